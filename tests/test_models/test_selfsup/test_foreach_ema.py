"""ForeachCosineEMA: the CMID teacher's EMA in torch._foreach_* calls, equal to mmpretrain's
CosineEMA bit for bit (same operations per element), same state dict."""
import pytest
import torch
from mmengine.logging import MessageHub
from mmpretrain.models import CosineEMA
from torch import nn

from cmid_mm.models.selfsup.cmid import ForeachCosineEMA


def _student(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 6 * 6, 5))


def _perturb(model, gen):
    """What a training step does to the student: new weights, new BN statistics."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    model.train()
    model(torch.randn(4, 3, 8, 8, generator=gen))


@pytest.mark.parametrize('interval', [1, 2])
def test_equal_to_cosine_ema_over_several_updates(interval):
    MessageHub.get_current_instance().update_info('max_iters', 7)
    student = _student()
    ref = CosineEMA(student, momentum=0.3, end_momentum=0.05, interval=interval)
    new = ForeachCosineEMA(student, momentum=0.3, end_momentum=0.05, interval=interval)
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):  # step 0 copies, then cosine-weighted averages
        _perturb(student, gen)
        ref.update_parameters(student)
        new.update_parameters(student)
    sd_ref, sd_new = ref.state_dict(), new.state_dict()
    assert list(sd_ref) == list(sd_new)  # same keys: checkpoints load either way
    for k in sd_ref:
        assert torch.equal(sd_ref[k], sd_new[k]), k
    assert int(sd_new['steps']) == 5
    # the average is neither the student nor its first copy
    assert not torch.equal(sd_new['module.4.weight'], student[4].weight)


def test_buffers_follow_the_student():
    MessageHub.get_current_instance().update_info('max_iters', 10)
    student = _student()
    new = ForeachCosineEMA(student, momentum=0.5)
    gen = torch.Generator().manual_seed(2)
    for _ in range(2):
        _perturb(student, gen)
        new.update_parameters(student)
    for (name, b_avg), b_src in zip(new.module.named_buffers(), student.buffers()):
        assert torch.equal(b_avg, b_src), name
