"""DualInputSegDataPreProcessor: per-date BGR->RGB and mean/std, padding, errors."""
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

MEAN = [10., 20., 30., 1., 2., 3.]  # RGB order: date 1 then date 2
STD = [2., 4., 5., 1., 0.5, 0.25]


def _preprocessor(**kw):
    cfg = dict(type='DualInputSegDataPreProcessor', mean=MEAN, std=STD, bgr_to_rgb=True)
    cfg.update(kw)
    return MODELS.build(cfg)


def _pair_input():
    """(6, 2, 3) uint8-valued input: BGR date 1 = (B=31, G=41, R=51),
    BGR date 2 = (B=7, G=8, R=9), constant over pixels."""
    x = torch.empty(6, 2, 3)
    for c, v in enumerate([31., 41., 51., 7., 8., 9.]):
        x[c] = v
    return x


def test_each_date_is_swapped_and_normalised_with_its_own_half():
    pre = _preprocessor()
    out = pre(dict(inputs=[_pair_input()], data_samples=[SegDataSample()]))['inputs']
    assert out.shape == (1, 6, 2, 3)
    # RGB date 1 = (51, 41, 31) with mean (10, 20, 30), std (2, 4, 5);
    # RGB date 2 = (9, 8, 7) with mean (1, 2, 3), std (1, .5, .25)
    expected = [(51 - 10) / 2, (41 - 20) / 4, (31 - 30) / 5,
                (9 - 1) / 1, (8 - 2) / .5, (7 - 3) / .25]
    assert out[0, :, 1, 2].tolist() == pytest.approx(expected)
    assert expected == pytest.approx([20.5, 5.25, 0.2, 8., 12., 16.])  # by hand


def test_without_colour_conversion_channels_keep_their_order():
    pre = _preprocessor(bgr_to_rgb=False)
    out = pre(dict(inputs=[_pair_input()], data_samples=[SegDataSample()]))['inputs']
    expected = [(31 - 10) / 2, (41 - 20) / 4, (51 - 30) / 5, 6., 12., 24.]
    assert out[0, :, 0, 0].tolist() == pytest.approx(expected)


def test_training_pads_images_and_labels_to_the_divisor():
    pre = _preprocessor(size_divisor=4, pad_val=0, seg_pad_val=255)
    sample = SegDataSample(gt_sem_seg=PixelData(data=torch.ones(1, 2, 3, dtype=torch.long)))
    out = pre(dict(inputs=[_pair_input()], data_samples=[sample]), training=True)
    x, label = out['inputs'], out['data_samples'][0].gt_sem_seg.data
    assert x.shape == (1, 6, 4, 4) and label.shape == (1, 4, 4)
    assert x[0, :, 2:, :].abs().sum() == 0 and x[0, :, :, 3:].abs().sum() == 0  # pad_val 0
    assert (label[0, 2:, :] == 255).all() and (label[0, :2, :3] == 1).all()


def test_errors_name_the_mismatch():
    with pytest.raises(ValueError, match='mean has 3 values.*BOTH dates'):
        _preprocessor(mean=[1., 2., 3.], std=[1., 1., 1.])
    pre = _preprocessor()
    with pytest.raises(ValueError, match='inputs have 4 channels but mean/std have 6'):
        pre(dict(inputs=[torch.zeros(4, 2, 2)], data_samples=[SegDataSample()]))
    pre = _preprocessor(mean=[0.] * 8, std=[1.] * 8)
    with pytest.raises(ValueError, match='need two 3-channel images.*got 8'):
        pre(dict(inputs=[torch.zeros(8, 2, 2)], data_samples=[SegDataSample()]))
