"""export_cmid.py and import_reference.py on real (tiny) CMID models."""
import copy
import os
import os.path as osp
import pickle
import subprocess
import sys
import types

import pytest
import torch
from mmengine.config import Config
from mmpretrain.models import ResNet
from mmpretrain.registry import MODELS

import cmid_mm  # noqa: F401
from cmid_mm.utils import register_safe_globals
from tests.test_models.test_selfsup.test_cmid import CONFIGS
from tests.utils import load_tool

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def _tool(name):
    return load_tool(f'tools/model_converters/{name}.py')


def _tiny_cmid(arch='resnet', seed=0):
    torch.manual_seed(seed)
    model = MODELS.build(copy.deepcopy(CONFIGS[arch]))
    model.init_weights()
    # make student and teacher differ, as after training
    with torch.no_grad():
        for p in model.teacher.parameters():
            p.add_(0.5)
        model.backbone.mask_token.normal_()
    return model


def _plain_torch_refuses_nothing(path):
    torch.serialization.clear_safe_globals()
    try:
        return torch.serialization.get_unsafe_globals_in_checkpoint(path)
    finally:
        register_safe_globals()


@pytest.mark.parametrize('source', ['student', 'teacher'])
def test_export_resnet_loads_into_stock_backbone(tmp_path, source, capsys):
    model = _tiny_cmid()
    cfg_text = Config(dict(model=copy.deepcopy(CONFIGS['resnet']))).pretty_text
    ckpt = tmp_path / 'epoch_3.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=3, iter=30, cfg=cfg_text)),
               ckpt)
    out = tmp_path / 'out' / 'backbone.pth'
    _tool('export_cmid').main([str(ckpt), str(out), '--source', source])
    printed = capsys.readouterr().out
    assert 'CMIDResNet' in printed and "'depth': 18" in printed and 'iter 30' in printed

    assert _plain_torch_refuses_nothing(str(out)) == []  # tensors only: no allow-list needed
    exported = torch.load(out, weights_only=True)['state_dict']
    src = model.backbone if source == 'student' else model.teacher.module.backbone
    expected = {f'backbone.{k}': v for k, v in src.state_dict().items() if k != 'mask_token'}
    assert exported.keys() == expected.keys()
    import torchvision  # independent reference: torchvision's resnet18 minus its fc layer
    assert len(exported) == len(torchvision.models.resnet18().state_dict()) - 2
    for k, v in expected.items():
        assert torch.equal(exported[k], v), k

    stock = ResNet(depth=18, init_cfg=dict(type='Pretrained', checkpoint=str(out),
                                           prefix='backbone.'))
    stock.init_weights()
    for k, v in stock.state_dict().items():
        assert torch.equal(v, expected[f'backbone.{k}']), k


def test_export_swin_drops_index_buffers_and_vit_mmseg_names(tmp_path, capsys):
    swin = _tiny_cmid('swin')
    torch.save(dict(state_dict=swin.state_dict(), meta={}), tmp_path / 's.pth')
    _tool('export_cmid').main([str(tmp_path / 's.pth'), str(tmp_path / 's_out.pth')])
    keys = torch.load(tmp_path / 's_out.pth')['state_dict'].keys()
    all_keys = [k for k in swin.backbone.state_dict() if k != 'mask_token']
    dropped = [k for k in all_keys if k.endswith(('relative_position_index', 'attn_mask'))]
    assert dropped and len(keys) == len(all_keys) - len(dropped)
    assert not any('relative_position_index' in k or 'mask_token' in k for k in keys)
    with pytest.raises(ValueError, match='only for ViT'):
        _tool('export_cmid').main([str(tmp_path / 's.pth'), str(tmp_path / 'x.pth'),
                                   '--mmseg-vit'])

    vit = _tiny_cmid('vit')
    torch.save(dict(state_dict=vit.state_dict(), meta={}), tmp_path / 'v.pth')
    _tool('export_cmid').main([str(tmp_path / 'v.pth'), str(tmp_path / 'v_out.pth'),
                               '--mmseg-vit'])
    renamed = torch.load(tmp_path / 'v_out_mmseg-vit.pth')['state_dict']
    assert not any(k.startswith('backbone.') or '.attn.qkv.' in k for k in renamed)
    assert torch.equal(renamed['layers.0.attn.attn.in_proj_weight'],
                       vit.backbone.state_dict()['layers.0.attn.qkv.weight'])
    assert torch.equal(renamed['layers.1.attn.attn.out_proj.bias'],
                       vit.backbone.state_dict()['layers.1.attn.proj.bias'])


def test_export_rejects_non_cmid_checkpoint(tmp_path):
    torch.save(dict(state_dict={'head.fc.weight': torch.zeros(1)}), tmp_path / 'c.pth')
    with pytest.raises(KeyError, match="no key starts with 'backbone.'.*head"):
        _tool('export_cmid').main([str(tmp_path / 'c.pth'), str(tmp_path / 'o.pth')])


# ------------------------------------------------------------------ reference import

EXECUTED = []


def _reference_layout(model):
    """The reference's full-file ``model`` dict: its key names, written out by hand."""
    sd = model.state_dict()
    ref = {}
    for k, v in sd.items():
        if k == 'backbone.mask_token':
            ref['online_encoder.mask_token'] = v.reshape(1, -1)
        elif k.startswith('backbone.'):
            ref['online_encoder.model.' + k[9:]] = v
        elif k == 'teacher.module.backbone.mask_token' or k == 'teacher.steps':
            continue
        elif k.startswith('teacher.module.backbone.'):
            ref['branch_encoder.model.' + k[24:]] = v
        elif k.startswith('mim_head.decoder.'):
            ref['mim2org.decoder_pred.' + k[17:]] = v
        elif k.startswith('global_neck.mlp.'):
            idx, rest = k[16:].split('.', 1)
            ref[f'online_projector.layer.0.{ {"0": "0", "2": "3"}[idx]}.{rest}'] = v
        elif k.startswith('teacher.module.global_neck.mlp.'):
            idx, rest = k[31:].split('.', 1)
            ref[f'branch_projector.layer.0.{ {"0": "0", "2": "3"}[idx]}.{rest}'] = v
        elif k.startswith(('local_neck.', 'teacher.module.local_neck.')):
            new = k.replace('teacher.module.local_neck.', 'branch_class_projector.')
            new = new.replace('local_neck.', 'class_projector.')
            new = new.replace('parametrizations.weight.original0', 'weight_g')
            ref[new.replace('parametrizations.weight.original1', 'weight_v')] = v
        elif k == 'local_head.center':
            ref['class_loss.center'] = v
        elif k == 'global_head.queue':
            ref['queue'] = v.t().contiguous()
        elif k == 'global_head.queue_ptr':
            ref['queue_ptr'] = v
        else:
            raise AssertionError(f'test layout misses {k}')
    return ref


def _write_reference_full(path, model):
    fake = types.ModuleType('cmid_reference_trainer')

    class MetricStorage:

        def __init__(self):
            self.history = {'loss': [1.0, 0.5]}

        def __setstate__(self, state):  # would run if the real class were used on load
            EXECUTED.append('setstate')
            self.__dict__.update(state)

    MetricStorage.__module__ = fake.__name__
    MetricStorage.__qualname__ = 'MetricStorage'
    fake.MetricStorage = MetricStorage
    sys.modules[fake.__name__] = fake
    try:
        torch.save(dict(epoch=7, num_gpus=4, model=_reference_layout(model),
                        optimizer={'state': {}}, metric_storage=MetricStorage(),
                        hooks=[]), path)
    finally:
        del sys.modules[fake.__name__]


def test_import_full_reference_file_roundtrip(tmp_path, capsys):
    model = _tiny_cmid()
    src = tmp_path / 'ref_full.pth'
    _write_reference_full(src, model)
    with pytest.raises(pickle.UnpicklingError):  # plain safe loading cannot read it
        torch.load(src, weights_only=True)
    out, exp = tmp_path / 'cmid.pth', tmp_path / 'backbone.pth'
    _tool('import_reference').main([str(src), str(out), '--iters-per-epoch', '5', '--export',
                                    str(exp)])
    assert EXECUTED == []  # the pickled object's code never ran
    ckpt = torch.load(out, weights_only=True)
    # epoch 7 (0-based) finished: 8 epochs of 5 iterations done
    assert ckpt['meta']['epoch'] == 8 and ckpt['meta']['iter'] == 40
    fresh = _tiny_cmid(seed=1)
    result = fresh.load_state_dict(ckpt['state_dict'], strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    for k, v in model.state_dict().items():
        if k == 'teacher.steps':
            assert int(fresh.state_dict()[k]) == 40
        elif k == 'teacher.module.backbone.mask_token':
            continue  # the teacher never uses its token; the import copies the student's
        else:
            assert torch.equal(fresh.state_dict()[k], v), k
    exported = torch.load(exp, weights_only=True)['state_dict']
    assert torch.equal(exported['backbone.conv1.weight'], model.backbone.conv1.weight)


def test_import_backbone_only_file(tmp_path):
    model = _tiny_cmid()
    flat = {k: v for k, v in model.backbone.state_dict().items() if k != 'mask_token'}
    flat['fc.weight'] = torch.zeros(10, 512)  # torchvision-style files may keep the classifier
    torch.save(flat, tmp_path / 'flat.pth')
    _tool('import_reference').main([str(tmp_path / 'flat.pth'), str(tmp_path / 'o.pth')])
    out = torch.load(tmp_path / 'o.pth', weights_only=True)['state_dict']
    assert set(out) == {f'backbone.{k}' for k in flat if k != 'fc.weight'}
    torch.save({'something': 1}, tmp_path / 'bad.pth')
    with pytest.raises(ValueError, match='not a CMID reference file'):
        _tool('import_reference').main([str(tmp_path / 'bad.pth'), str(tmp_path / 'x.pth')])


def test_imported_full_file_resumes_pretraining(tmp_path):
    """The converted file continues the demo pretraining through tools/train.py --resume."""
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'cmid_demo_resnet18_rs-sample.py'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    with torch.no_grad():
        model.global_head.queue_ptr.fill_(8)
    src = tmp_path / 'ref_full.pth'
    _write_reference_full(src, model)
    out = tmp_path / 'cmid.pth'
    _tool('import_reference').main([str(src), str(out), '--iters-per-epoch', '2'])
    cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'),
           osp.join(REPO, 'configs', 'cmid_demo_resnet18_rs-sample.py'), '--work-dir',
           str(tmp_path / 'w'), '--resume', str(out), '--cfg-options',
           'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
           'train_dataloader.dataset.indices=8', 'train_cfg.max_epochs=9']
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS='2'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the reference's epoch_7.pth resumes at epoch 8 (0-based) = mmengine's "8 epochs done"
    assert 'resumed epoch: 8, iter: 16' in proc.stdout + proc.stderr
    final = torch.load(tmp_path / 'w' / 'epoch_9.pth', weights_only=True)['state_dict']
    assert int(final['teacher.steps']) == 16 + 2  # imported steps + 2 new EMA updates
    assert int(final['global_head.queue_ptr']) == (8 + 2 * 2 * 4) % 1024
