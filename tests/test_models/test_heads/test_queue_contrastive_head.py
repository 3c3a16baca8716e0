import math

import pytest
import torch

from cmid_mm.models.heads import QueueContrastiveHead


def test_infonce_known_queue():
    head = QueueContrastiveHead(feat_dim=2, queue_len=4, temperature=0.5)
    head.queue.copy_(torch.tensor([[1., 0.], [0., 1.], [-1., 0.], [0., -1.]]))
    q = torch.tensor([[3., 4.]], requires_grad=True)  # normalised: (0.6, 0.8)
    k = torch.tensor([[2., 0.]])  # normalised: (1, 0)
    loss = head.loss(q, k)
    # logits / T: pos 0.6, negatives 0.6, 0.8, -0.6, -0.8
    logits = [v / 0.5 for v in (0.6, 0.6, 0.8, -0.6, -0.8)]
    expected = -logits[0] + math.log(sum(math.exp(v) for v in logits))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_infonce_batch_mean():
    head = QueueContrastiveHead(feat_dim=2, queue_len=2, temperature=1.0)
    head.queue.copy_(torch.tensor([[0., 1.], [0., -1.]]))
    q = torch.tensor([[1., 0.], [0., 1.]])
    k = torch.tensor([[1., 0.], [1., 0.]])
    # sample 0: logits (1, 0, 0); sample 1: logits (0, 1, -1)
    l0 = -1 + math.log(math.e + 2)
    l1 = math.log(1 + math.e + math.exp(-1))
    assert head.loss(q, k).item() == pytest.approx((l0 + l1) / 2, rel=1e-6)


def test_queue_init_and_buffers():
    torch.manual_seed(0)
    head = QueueContrastiveHead(feat_dim=8, queue_len=32)
    assert head.queue.shape == (32, 8)
    assert torch.allclose(head.queue.norm(dim=1), torch.ones(32))
    assert head.queue_ptr.dtype == torch.long and head.queue_ptr.tolist() == [0]
    assert {'queue', 'queue_ptr'} <= set(head.state_dict())
    ref = QueueContrastiveHead(feat_dim=8, queue_len=32, reference_queue_init=True)
    assert torch.allclose(ref.queue.norm(dim=0), torch.ones(8))


def test_enqueue_pointer_and_wrap_around():
    head = QueueContrastiveHead(feat_dim=2, queue_len=6)
    old = head.queue.clone()
    head.enqueue(torch.tensor([[2., 0.], [0., 2.]]))
    assert head.queue_ptr.item() == 2
    assert torch.allclose(head.queue[:2], torch.tensor([[1., 0.], [0., 1.]]))  # normalised
    assert torch.equal(head.queue[2:], old[2:])
    head.enqueue(torch.tensor([[0., -3.], [-3., 0.]]))
    assert head.queue_ptr.item() == 4
    head.enqueue(torch.tensor([[3., 4.], [4., 3.]]))
    assert head.queue_ptr.item() == 0  # wrapped
    head.enqueue(torch.tensor([[-3., -4.], [-4., -3.]]))
    assert head.queue_ptr.item() == 2
    expected = torch.tensor([[-.6, -.8], [-.8, -.6], [0., -1.], [-1., 0.], [.6, .8], [.8, .6]])
    assert torch.allclose(head.queue, expected)


def test_enqueue_divisibility_error():
    head = QueueContrastiveHead(feat_dim=2, queue_len=6)
    with pytest.raises(ValueError, match=r'queue_len=6.*\(4 '):
        head.enqueue(torch.ones(4, 2))
    assert head.queue_ptr.item() == 0


def test_loss_then_enqueue_then_backward():
    """The algorithm enqueues before backward: the loss must not depend on the live queue."""
    torch.manual_seed(0)
    head = QueueContrastiveHead(feat_dim=4, queue_len=8)
    q = torch.randn(2, 4, requires_grad=True)
    k = torch.randn(2, 4, requires_grad=True)
    loss = head.loss(q, k)
    head.enqueue(k)
    loss.backward()
    assert q.grad.abs().sum() > 0
    assert k.grad is None


def test_feat_dim_error():
    head = QueueContrastiveHead(feat_dim=4, queue_len=8)
    with pytest.raises(ValueError, match='feat_dim=4'):
        head.loss(torch.ones(2, 3), torch.ones(2, 3))


def _autograd_infonce(q, k, queue, temperature):
    """Plain autograd InfoNCE on a private copy of the queue: the reference gradient."""
    q = torch.nn.functional.normalize(q, dim=1)
    k = torch.nn.functional.normalize(k, dim=1)
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.clone().t()], 1) / temperature
    return torch.nn.functional.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long))


def test_gradient_matches_autograd_and_ignores_later_enqueue():
    """The up-front gradient equals autograd's, also when the queue changes before backward."""
    torch.manual_seed(0)
    head = QueueContrastiveHead(feat_dim=16, queue_len=64, temperature=0.2).double()
    q = torch.randn(8, 16, dtype=torch.float64, requires_grad=True)
    k = torch.randn(8, 16, dtype=torch.float64)
    q_ref = q.detach().clone().requires_grad_()
    ref = _autograd_infonce(q_ref, k, head.queue, 0.2)
    ref.backward()
    loss = head.loss(q, k)
    head.enqueue(torch.randn(8, 16, dtype=torch.float64))  # overwrites 8 of the 64 keys
    (3.0 * loss).backward()  # a weight in front of the loss scales the gradient
    assert loss.item() == pytest.approx(ref.item(), rel=1e-12)
    assert torch.allclose(q.grad, 3.0 * q_ref.grad, rtol=1e-10, atol=1e-12)


def test_stacked_pairs_equal_the_mean_of_separate_calls():
    """CMID stacks both directions into one call: the mean of the two separate losses."""
    torch.manual_seed(1)
    head = QueueContrastiveHead(feat_dim=8, queue_len=32)
    q0, q1, k0, k1 = torch.randn(4, 3, 8).unbind(0)
    joint = head.loss(torch.cat([q0, q1]), torch.cat([k1, k0]))
    separate = (head.loss(q0, k1) + head.loss(q1, k0)) / 2
    assert joint.item() == pytest.approx(separate.item(), rel=1e-6)


def test_float32_under_bfloat16_autocast():
    head = QueueContrastiveHead(feat_dim=8, queue_len=32)
    q = torch.randn(4, 8, requires_grad=True)
    k = torch.randn(4, 8).bfloat16()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = head.loss(q.bfloat16(), k)
    assert loss.dtype == torch.float32
    loss.backward()
    # the same bfloat16 inputs outside autocast, in float32: same loss and gradient
    q_ref = q.detach().bfloat16().float().requires_grad_()
    ref = head.loss(q_ref, k.float())
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)
    assert q.grad.dtype == torch.float32
    assert torch.allclose(q.grad, q_ref.grad.bfloat16().float(), rtol=1e-2, atol=1e-3)


def test_queue_not_divisible_by_global_batch_names_both():
    head = QueueContrastiveHead(feat_dim=8, queue_len=1000)
    with pytest.raises(ValueError, match=r'queue_len=1000 .*\(24 = batch size x world size\)'):
        head.enqueue(torch.randn(24, 8))
    assert int(head.queue_ptr) == 0  # nothing written
