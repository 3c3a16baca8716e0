"""FeatureFusionNeck: the four policies on hand-built tensors, level selection, errors."""
import pytest
import torch
from mmseg.registry import MODELS


def _pyramids():
    # date 1: level i filled with (i + 1); date 2: level i filled with 10 * (i + 1), except
    # channel 0 of every level, which is 0.5 in date 2 (so diff / abs_diff differ in sign).
    x1, x2 = [], []
    for i, c in enumerate([2, 3, 4, 5]):
        s = 8 >> i
        x1.append(torch.full((2, c, s, s), float(i + 1)))
        b = torch.full((2, c, s, s), 10. * (i + 1))
        b[:, 0] = 0.5
        x2.append(b)
    return x1, x2


def _neck(**kw):
    return MODELS.build(dict(type='FeatureFusionNeck', **kw))


def test_concat_keeps_date_order_and_doubles_channels():
    x1, x2 = _pyramids()
    out = _neck(policy='concat')(x1, x2)
    assert [tuple(o.shape) for o in out] == [(2, 4, 8, 8), (2, 6, 4, 4), (2, 8, 2, 2),
                                            (2, 10, 1, 1)]
    # level 1: channels 0..2 are date 1 (value 2), channels 3..5 date 2 (0.5, 20, 20)
    assert out[1][0, :, 0, 0].tolist() == [2., 2., 2., 0.5, 20., 20.]


def test_sum_diff_absdiff_values():
    x1, x2 = _pyramids()
    s = _neck(policy='sum')(x1, x2)
    d = _neck(policy='diff')(x1, x2)
    a = _neck(policy='abs_diff')(x1, x2)
    # level 2 (date 1 = 3, date 2 = [0.5, 30, 30, 30])
    assert s[2][1, :, 0, 0].tolist() == [3.5, 33., 33., 33.]
    assert d[2][1, :, 0, 0].tolist() == [-2.5, 27., 27., 27.]  # date 2 - date 1
    assert a[2][1, :, 0, 0].tolist() == [2.5, 27., 27., 27.]
    assert all(o.shape == x.shape for o, x in zip(a, x1))
    # abs_diff is symmetric in the dates, diff flips sign
    assert all(torch.equal(p, q) for p, q in zip(a, _neck(policy='abs_diff')(x2, x1)))
    assert all(torch.equal(p, -q) for p, q in zip(d, _neck(policy='diff')(x2, x1)))


def test_out_indices_select_and_order_levels():
    x1, x2 = _pyramids()
    out = _neck(policy='sum', out_indices=(3, 1))(x1, x2)
    assert [o.shape[1] for o in out] == [5, 3]
    assert out[0][0, 1, 0, 0].item() == 44.


def test_channel_checks_and_bad_arguments():
    x1, x2 = _pyramids()
    # right declarations pass ...
    _neck(policy='concat', in_channels=[2, 3, 4, 5], channels=[4, 6, 8, 10])(x1, x2)
    # ... wrong ones name what is off
    with pytest.raises(ValueError, match=r'in_channels=\[2, 3, 4, 6\].*\[2, 3, 4, 5\]'):
        _neck(policy='concat', in_channels=[2, 3, 4, 6])(x1, x2)
    with pytest.raises(ValueError, match="channels=4 but policy 'sum' gives"):
        _neck(policy='sum', channels=4)(x1, x2)
    with pytest.raises(ValueError, match="policy 'mul' is not one of"):
        _neck(policy='mul')
    with pytest.raises(IndexError, match=r'out_indices=\(0,\)'):
        _neck(policy='concat')(x1[:1], x2[:1])
    with pytest.raises(ValueError, match='level 0 has shapes'):
        _neck(policy='sum', out_indices=(0, ))([x1[0]], [x1[0][:, :1]])
