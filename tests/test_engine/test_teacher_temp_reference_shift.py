"""The reference run's teacher-temperature schedule, reproduced by a config (differences doc)."""
import copy
from types import SimpleNamespace

import numpy as np
import pytest
from mmpretrain.registry import HOOKS, MODELS

from tests.test_models.test_selfsup.test_cmid import CONFIGS


def _reference_schedule(epochs=200, warmup=50, model_warmup_epoch=-1):
    """The reference's per-epoch table and its index: linspace(0.04, 0.07, 50) then 0.07,
    ``epochs - model_warmup_epoch`` entries, read at ``epoch - model_warmup_epoch``."""
    table = np.concatenate((np.linspace(0.04, 0.07, warmup),
                            np.ones(epochs - model_warmup_epoch - warmup) * 0.07))
    return [table[e - model_warmup_epoch] for e in range(epochs)]


def _temps(hook_cfg, warmup_epochs, epochs=200):
    cfg = copy.deepcopy(CONFIGS['resnet'])
    cfg['local_head']['warmup_teacher_temp_epochs'] = warmup_epochs
    model = MODELS.build(cfg)
    hook = HOOKS.build(hook_cfg)
    out = []
    for epoch in range(epochs):
        hook.before_train_iter(SimpleNamespace(model=model, epoch=epoch, iter=0,
                                               train_dataloader=range(10)), 0)
        out.append(model.local_head.cur_teacher_temp)
    return out


def test_offset_config_gives_the_reference_schedule_exactly():
    ref = _reference_schedule()
    assert ref[0] == pytest.approx(0.040612, abs=5e-7)  # the values stated in the doc
    assert ref[47] < 0.07 and ref[48] == 0.07
    got = _temps(dict(type='TeacherTempWarmupHook', by_epoch=True, epoch_offset=1), 49)
    assert got == ref  # float for float: same start + index * step as numpy's linspace


def test_default_config_is_the_papers_schedule():
    got = _temps(dict(type='TeacherTempWarmupHook', by_epoch=True), 50)
    assert got[0] == 0.04 and got[25] == pytest.approx(0.055) and got[49] < 0.07
    assert got[50] == 0.07
    assert got != _reference_schedule()


def test_negative_offset_is_refused():
    with pytest.raises(ValueError, match='epoch_offset must be >= 0; got -1'):
        HOOKS.build(dict(type='TeacherTempWarmupHook', epoch_offset=-1))
