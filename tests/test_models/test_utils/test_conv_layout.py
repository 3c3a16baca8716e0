"""The MIM decoder and the local neck are Linear modules (what runs) with checkpoints in the
1x1-convolution layout of every earlier cmid_mm release.

``tests/test_models/data/conv_heads_18f16ed.pt`` was written by cmid_mm at commit 18f16ed
(Conv modules run through ``F.linear``): ``CMIDMIMHead(in_channels=4, encoder_stride=2,
in_chans=3)`` and ``CMIDLocalHead(in_channels=6, hid_channels=8, bottleneck_channels=4,
out_channels=5, num_layers=3, with_bn=False/True)`` after ``torch.manual_seed(0)``: their
state dicts (``*_sd``), fixed inputs (``mim_in`` (2, 4, 3, 2), ``loc_in`` (3, 6, 4)) and
outputs (``mim_out``, ``loc0_out``, ``loc1_out``; the local necks in train mode).
"""
import copy
import io
import os.path as osp
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cmid_mm.models.heads import CMIDMIMHead
from cmid_mm.models.necks import CMIDLocalNeck
from cmid_mm.models.utils import keep_conv_layout

OLD = osp.join(osp.dirname(osp.dirname(__file__)), 'data', 'conv_heads_18f16ed.pt')


@pytest.fixture(scope='module')
def old():
    return torch.load(OLD, weights_only=True)


def _mim():
    return CMIDMIMHead(in_channels=4, encoder_stride=2, in_chans=3)


def _neck(bn):
    return CMIDLocalNeck(in_channels=6, hid_channels=8, bottleneck_channels=4, out_channels=5,
                         num_layers=3, with_bn=bool(bn)).train()


def _same_layout(sd, ref):
    assert list(sd) == list(ref)
    assert {k: tuple(v.shape) for k, v in sd.items()} == {k: tuple(v.shape) for k, v in ref.items()}


def test_old_mim_head_checkpoint_loads_strict_and_gives_its_outputs(old):
    head = _mim()
    head.load_state_dict(old['mim_sd'], strict=True)
    out = head(old['mim_in'])
    # The old code's computation, in this process: bit for bit.
    w, b = old['mim_sd']['decoder.0.weight'], old['mim_sd']['decoder.0.bias']
    rows = old['mim_in'].permute(0, 2, 3, 1).reshape(-1, 4)
    ref = F.pixel_shuffle(F.linear(rows, w.flatten(1), b).reshape(2, 3, 2, 12).permute(0, 3, 1, 2), 2)
    assert torch.equal(out, ref)
    # The outputs the old code wrote (another machine may round sums of 4 terms differently).
    torch.testing.assert_close(out, old['mim_out'], rtol=0, atol=1e-6)
    _same_layout(head.state_dict(), old['mim_sd'])
    assert head.state_dict()['decoder.0.weight'].shape == (12, 4, 1, 1)


@pytest.mark.parametrize('bn', [0, 1])
def test_old_local_head_checkpoint_loads_strict_and_gives_its_outputs(old, bn):
    neck = _neck(bn)
    neck.load_state_dict(old[f'loc{bn}_sd'], strict=True)
    sd = neck.state_dict()  # saved back unchanged: same keys, shapes and values
    _same_layout(sd, old[f'loc{bn}_sd'])
    for k, v in sd.items():
        assert torch.equal(v, old[f'loc{bn}_sd'][k]), k
    torch.testing.assert_close(neck(old['loc_in']), old[f'loc{bn}_out'], rtol=0, atol=1e-6)


def test_print_shows_the_linear_layers_that_run():
    text = repr(_neck(1)) + repr(_mim())
    assert 'Conv' not in text
    assert 'Linear(in_features=6, out_features=8, bias=True)' in text
    assert 'ParametrizedLinear(\n    in_features=4, out_features=5, bias=False' in text  # last_layer
    assert 'Linear(in_features=4, out_features=12, bias=True)' in text  # MIM decoder


def test_forward_hooks_see_the_tensors_used():
    torch.manual_seed(0)
    head, seen = _mim(), {}
    head.decoder[0].register_forward_hook(lambda m, i, o: seen.update(inp=i[0], out=o))
    feat = torch.randn(2, 4, 3, 2)
    pred = head(feat)
    assert torch.equal(seen['inp'], feat.permute(0, 2, 3, 1).reshape(12, 4))
    # the hooked output is exactly what the pixel shuffle rearranges into the prediction
    assert torch.equal(F.pixel_shuffle(seen['out'].reshape(2, 3, 2, 12).permute(0, 3, 1, 2), 2),
                       pred)

    neck, outs = _neck(0), []
    for m in list(neck.mlp) + [neck.last_layer]:
        m.register_forward_hook(lambda m, i, o: outs.append(o))
    x = torch.randn(2, 6, 3)
    y = neck(x)
    assert outs[0].shape == (6, 8)  # B * M rows
    assert torch.equal(outs[-1].reshape(2, 3, 5).transpose(1, 2), y)


def test_linear_layout_state_dicts_and_copies_load_too():
    torch.manual_seed(0)
    src, dst = _neck(1), _neck(1)
    plain = {k: v.reshape(v.shape[:2]) if k.endswith(('weight', 'original0', 'original1'))
             and v.dim() == 3 else v for k, v in src.state_dict().items()}
    dst.load_state_dict(plain, strict=True)
    x = torch.randn(2, 6, 3)
    assert torch.equal(dst(x), src(x))
    teacher = copy.deepcopy(src)  # the EMA teacher is a deep copy: its hooks work too
    _same_layout(teacher.state_dict(), src.state_dict())
    mim = _mim()  # (weight-normalised modules cannot be pickled; the decoder can)
    _same_layout(pickle.loads(pickle.dumps(mim)).state_dict(), mim.state_dict())
    buf = io.BytesIO()
    torch.save(src.state_dict(), buf)
    buf.seek(0)
    dst2 = _neck(1)
    dst2.load_state_dict(torch.load(buf, weights_only=True), strict=True)
    assert torch.equal(dst2(x), src(x))


def test_wrong_shape_still_fails_and_bad_dims_raise():
    neck = _neck(0)
    sd = neck.state_dict()
    sd['mlp.0.weight'] = torch.zeros(8, 6, 2)  # not a 1x1 kernel
    with pytest.raises(RuntimeError, match='size mismatch for mlp.0.weight'):
        neck.load_state_dict(sd)
    with pytest.raises(ValueError, match='kernel_dims must be 1'):
        keep_conv_layout(nn.Linear(2, 2), 3)
