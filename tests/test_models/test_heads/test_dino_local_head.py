import numpy as np
import pytest
import torch

from cmid_mm.models.heads import DINOLocalHead


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_dino_loss_matches_formula():
    torch.manual_seed(0)
    K, B, M = 5, 2, 3
    loss_fn = DINOLocalHead(out_channels=K)
    center = torch.randn(1, K, 1) * 0.1
    loss_fn.center.copy_(center)
    loss_fn.set_teacher_temp(10.0)  # 0.04 + 0.03 * 10 / 50 = 0.046
    student = torch.randn(B, K, M, requires_grad=True)
    teacher = torch.randn(B, K, M, requires_grad=True)
    loss = loss_fn.loss(student, teacher)

    s, t, c = (x.detach().double().numpy() for x in (student, teacher, center))
    p_t = _softmax((t - c) / 0.046, axis=1)
    log_p_s = np.log(_softmax(s / 0.1, axis=1))
    expected = sum(-(p_t[b, :, m] * log_p_s[b, :, m]).sum() for b in range(B)
                   for m in range(M)) / (B * M)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(expected, rel=1e-5)

    loss.backward()
    assert teacher.grad is None
    assert student.grad.abs().sum() > 0


def test_center_after_two_updates():
    loss_fn = DINOLocalHead(out_channels=2, center_momentum=0.9)
    t1 = torch.tensor([[[1., 3.], [0., 2.]], [[5., 7.], [4., 6.]]])  # means: k0 4, k1 3
    t2 = torch.tensor([[[2., 2.], [-2., -2.]]])  # means: k0 2, k1 -2
    loss_fn.update_center(t1)
    assert torch.allclose(loss_fn.center, torch.tensor([[[0.4], [0.3]]]))
    loss_fn.update_center(t2)
    # 0.9 * 0.4 + 0.1 * 2 = 0.56 ; 0.9 * 0.3 + 0.1 * (-2) = 0.07
    assert torch.allclose(loss_fn.center, torch.tensor([[[0.56], [0.07]]]))
    assert loss_fn.center.shape == (1, 2, 1)
    assert 'center' in loss_fn.state_dict()


@pytest.mark.parametrize('epoch,expected', [(0, 0.04), (25, 0.055), (12.5, 0.0475), (50, 0.07),
                                            (60, 0.07)])
def test_teacher_temp_schedule(epoch, expected):
    loss_fn = DINOLocalHead(out_channels=4)
    loss_fn.set_teacher_temp(epoch)
    assert loss_fn.cur_teacher_temp == pytest.approx(expected)


def test_teacher_temp_initial_and_no_warmup():
    assert DINOLocalHead(out_channels=4).cur_teacher_temp == pytest.approx(0.04)
    loss_fn = DINOLocalHead(out_channels=4, warmup_teacher_temp_epochs=0)
    assert loss_fn.cur_teacher_temp == pytest.approx(0.07)


def test_shape_errors():
    loss_fn = DINOLocalHead(out_channels=4)
    with pytest.raises(ValueError, match='out_channels'):
        loss_fn(torch.zeros(1, 3, 2), torch.zeros(1, 3, 2))
    with pytest.raises(ValueError, match='same shape'):
        loss_fn(torch.zeros(1, 4, 2), torch.zeros(1, 4, 3))


def test_forward_is_loss():
    torch.manual_seed(0)
    head = DINOLocalHead(out_channels=4)
    s, t = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    assert torch.equal(head(s, t), head.loss(s, t))
