"""tools/train.py argument merging and its errors."""
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.runner import Runner
from tests.utils import load_tool

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


train = load_tool('tools/train.py')


def _cfg(**kw):
    base = dict(optim_wrapper=dict(type='AmpOptimWrapper', loss_scale='dynamic',
                                   optimizer=dict(type='SGD', lr=0.1)),
                train_dataloader=dict(num_workers=0, persistent_workers=True),
                auto_scale_lr=dict(base_batch_size=256, enable=False))
    base.update(kw)
    return Config(base)


def test_bad_config_path_names_the_file():
    with pytest.raises(FileNotFoundError, match='no_such_config.py.*does not exist'):
        train.main(['configs/no_such_config.py'])


def test_merge_args_resume_amp_autoscale_and_options():
    args = train.parse_args(['x.py', '--resume', '--auto-scale-lr', '--work-dir', 'w',
                             '--cfg-options', 'train_dataloader.batch_size=3'])
    cfg = train.merge_args(_cfg(), args)
    assert cfg.resume is True and cfg.load_from is None
    assert cfg.auto_scale_lr.enable is True
    assert cfg.work_dir == 'w'
    assert cfg.train_dataloader.batch_size == 3
    # persistent workers need workers
    assert cfg.train_dataloader.persistent_workers is False
    cfg = train.merge_args(_cfg(), train.parse_args(['x.py', '--resume', 'a/b.pth']))
    assert cfg.resume is True and cfg.load_from == 'a/b.pth'
    assert cfg.work_dir == osp.join('./work_dirs', 'x')


def test_amp_falls_back_to_fp32_without_gpu():
    import torch
    if torch.cuda.is_available():
        pytest.skip('GPU present: AMP is kept')
    from cmid_mm.engine.optimizers import cpu_bf16_supported
    if cpu_bf16_supported():  # tests/test_models/test_selfsup/test_cmid_speed.py covers it
        pytest.skip('this CPU has native bfloat16: --amp trains with bfloat16 autocast')
    with pytest.warns(UserWarning, match='AMP needs a GPU'):
        cfg = train.merge_args(_cfg(), train.parse_args(['x.py', '--amp']))
    assert cfg.optim_wrapper.type == 'OptimWrapper'
    assert 'loss_scale' not in cfg.optim_wrapper


def test_auto_scale_lr_without_field_is_a_clear_error():
    cfg = _cfg()
    cfg.pop('auto_scale_lr')
    with pytest.raises(KeyError, match='has no `auto_scale_lr`'):
        train.merge_args(cfg, train.parse_args(['x.py', '--auto-scale-lr']))


def test_both_local_rank_spellings():
    assert train.parse_args(['x.py', '--local_rank', '1']).local_rank == 1
    assert train.parse_args(['x.py', '--local-rank', '2']).local_rank == 2


def test_unknown_type_names_type_and_registry(tmp_path):
    cfg = Config(dict(
        default_scope='mmpretrain',
        custom_imports=dict(imports=['cmid_mm'], allow_failed_imports=False),
        model=dict(type='NoSuchAlgorithm'), work_dir=str(tmp_path)))
    with pytest.raises(KeyError, match='NoSuchAlgorithm is not in the mmpretrain::model'):
        Runner.from_cfg(cfg).model
