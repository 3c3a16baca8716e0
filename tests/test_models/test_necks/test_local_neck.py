import copy

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from torch import nn

from cmid_mm.models.necks import CMIDLocalNeck


def _head(**kwargs):
    cfg = dict(type='CMIDLocalNeck', in_channels=6, hid_channels=16, bottleneck_channels=4,
               out_channels=10)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def test_structure_and_shape():
    head = _head(with_bn=True)
    assert isinstance(head, CMIDLocalNeck)
    kinds = [type(m) for m in head.mlp]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.GELU, nn.Linear, nn.BatchNorm1d, nn.GELU,
                     nn.Linear]
    assert [m.out_features for m in head.mlp if isinstance(m, nn.Linear)] == [16, 16, 4]
    assert isinstance(head.last_layer, nn.Linear) and head.last_layer.out_features == 10
    assert head(torch.randn(2, 6, 5)).shape == (2, 10, 5)
    assert [type(m) for m in _head().mlp] == [nn.Linear, nn.GELU, nn.Linear, nn.GELU, nn.Linear]
    assert [type(m) for m in _head(num_layers=1).mlp] == [nn.Linear]
    assert len(_head(num_layers=4).mlp) == 7
    with pytest.raises(ValueError, match='num_layers'):
        _head(num_layers=0)


def test_output_is_cosine_to_prototypes():
    torch.manual_seed(0)
    head = _head()
    x = torch.randn(2, 6, 5)
    out = head(x)
    # g = 1: the effective weight is v / ||v|| per prototype; bottleneck is unit-norm.
    v = head.last_layer.parametrizations.weight.original1.detach()  # (10, 4)
    protos = v / v.norm(dim=1, keepdim=True)
    z = head.mlp(x.transpose(1, 2)).transpose(1, 2)  # Linear layers act on each cell
    z = z / z.norm(dim=1, keepdim=True)
    assert torch.allclose(out, torch.einsum('kc,bcm->bkm', protos, z), atol=1e-6)
    assert out.abs().max() <= 1 + 1e-6
    # scaling the bottleneck does not change the output (it is L2-normalised)
    with torch.no_grad():
        head.mlp[-1].weight.mul_(5)
        head.mlp[-1].bias.mul_(5)
    assert torch.allclose(head(x), out, atol=1e-6)


def test_g_fixed_and_gradients():
    torch.manual_seed(0)
    head = _head(with_bn=True)
    g = head.last_layer.parametrizations.weight.original0
    assert g.shape == (10, 1)
    assert head.state_dict()['last_layer.parametrizations.weight.original0'].shape == (10, 1, 1)
    assert torch.equal(g, torch.ones_like(g))
    assert not g.requires_grad
    head(torch.randn(3, 6, 4)).pow(2).sum().backward()
    assert g.grad is None
    for name, p in head.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    trainable = {n for n, p in head.named_parameters() if p.requires_grad}
    assert 'last_layer.parametrizations.weight.original0' not in trainable
    assert 'last_layer.parametrizations.weight.original1' in trainable
    assert 'mlp.0.weight' in trainable


def test_default_conv_init_kept():
    """method.md §4.3: PyTorch's default init (kaiming-uniform, bound 1/sqrt(fan_in) for the bias)."""
    torch.manual_seed(0)
    head = _head(in_channels=64)
    head.init_weights()
    bias = head.mlp[0].bias
    assert bias.abs().max() <= 1 / 8
    assert bias.abs().max() > 0.05  # not zero-initialised
    assert head.mlp[0].weight.abs().max() <= 1 / 8


def test_input_shape_error():
    with pytest.raises(ValueError, match=r'\(B, C, M\)'):
        _head()(torch.randn(2, 6, 2, 2))


def test_deepcopy_for_ema_teacher():
    head = _head()
    teacher = copy.deepcopy(head)
    x = torch.randn(1, 6, 3)
    assert torch.equal(teacher(x), head(x))
    assert not teacher.last_layer.parametrizations.weight.original0.requires_grad


@pytest.mark.parametrize('with_bn', [False, True])
def test_linear_rows_equal_conv1d_of_the_checkpoint(with_bn):
    """The Linear layers compute what the checkpoint's 1x1 Conv1d weights (the reference's
    layers) compute on (B, C, M) maps, BN statistics included."""
    torch.manual_seed(0)
    head = CMIDLocalNeck(in_channels=12, hid_channels=16, bottleneck_channels=6,
                         out_channels=10, num_layers=3, with_bn=with_bn).train()
    sd = head.state_dict()  # Conv1d layout
    x = torch.randn(4, 12, 5)
    out = head(x)
    h = x
    for i, layer in enumerate(head.mlp):
        if isinstance(layer, nn.Linear):
            h = F.conv1d(h, sd[f'mlp.{i}.weight'], sd[f'mlp.{i}.bias'])
        elif isinstance(layer, nn.BatchNorm1d):
            h = F.batch_norm(h, None, None, sd[f'mlp.{i}.weight'], sd[f'mlp.{i}.bias'],
                             training=True)
        else:
            h = layer(h)
    g = sd['last_layer.parametrizations.weight.original0']
    v = sd['last_layer.parametrizations.weight.original1']
    expected = F.conv1d(F.normalize(h, dim=1), g * v / v.norm(dim=(1, 2), keepdim=True))
    assert out.shape == (4, 10, 5)
    # different kernels (conv vs matrix product), float32 sums over <= 16 terms
    assert torch.allclose(out, expected, atol=1e-5)
