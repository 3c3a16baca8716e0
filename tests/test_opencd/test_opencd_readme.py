"""The worked examples of configs/opencd/README.md, exactly as written (only the checkpoint
paths point at generated exports), load every CMID tensor with the counts the README states."""
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from cmid_mm.engine.hooks.pretrained_check_hook import check_pretrained_loads
from tests.test_opencd.opencd_utils import REPO

README = osp.join(REPO, 'configs', 'opencd', 'README.md')


def _text():
    with open(README, encoding='utf-8') as f:
        return f.read()


def _examples():
    return re.findall(r'```python\n(.*?)```', _text(), re.S)


# example -> (the checkpoint it names, the export kind, (loaded, resized, new by design,
# unexpected), the hook line the README quotes)
EXAMPLES = {
    'resnet': ('work_dirs/cmid_r18_backbone.pth', 'r18', (120, 0, 0, 0),
               'loaded 120 | resized 0 | new by design 0 | missing 0 | not loaded 0 | '
               'unexpected (unused in the file) 0 -> OK'),
    'swin': ('work_dirs/cmid_swin-b_backbone.pth', 'swin-b', (327, 0, 30, 0),
             'loaded 327 | resized 0 | new by design 30 | missing 0 | not loaded 0'),
    'vit': ('work_dirs/cmid_vit-b_backbone_mmseg-vit.pth', 'vit-b', (149, 1, 0, 0), None),
}


def test_readme_has_one_example_per_backbone_family():
    examples = _examples()
    assert len(examples) == 3
    for (name, (ckpt, *_)), text in zip(EXAMPLES.items(), examples):
        assert f"checkpoint='{ckpt}'" in text, name


@pytest.mark.parametrize('index,name', list(enumerate(EXAMPLES)))
def test_readme_example_loads_every_cmid_tensor(opencd_env, tmp_path, index, name,
                                                cmid_r18_trained_like, full_size_export):
    ckpt, kind, counts, quoted = EXAMPLES[name]
    export = cmid_r18_trained_like if kind == 'r18' else full_size_export(kind)
    text = _examples()[index]
    assert text.count(ckpt) == 1
    path = tmp_path / f'{name}.py'
    path.write_text(text.replace(ckpt, export))
    import opencd.models  # noqa: F401
    from opencd.registry import MODELS
    cfg = Config.fromfile(str(path))
    assert cfg.default_scope == 'opencd' and cfg.runner_type == 'SafeRunner'
    assert cfg.custom_hooks == [dict(type='PretrainedLoadCheckHook')]
    with DefaultScope.overwrite_default_scope('opencd'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    (report, ) = check_pretrained_loads(model)  # strict: raises if anything stayed random
    c = report.counts()
    assert (c['loaded'], c['resized'], c['new_by_design'], c['unexpected']) == counts
    assert c['missing'] == c['not_loaded'] == 0
    if quoted:  # the README quotes the hook's line for this example
        assert quoted in ' '.join(_text().split())
        assert quoted in ' '.join(report.summary().split())
    if name == 'vit':
        assert [k for k, _ in report.resized] == ['pos_embed']  # 14x14 grid -> 16x16
    model.eval()
    with torch.no_grad():
        assert model._forward(torch.rand(1, 6, 64, 64)).shape[:2] == (1, 2)
