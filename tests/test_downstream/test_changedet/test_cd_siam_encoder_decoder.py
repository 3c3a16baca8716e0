"""SiamEncoderDecoder: one shared backbone on both dates, fusion, loss / predict."""
import copy

import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.structures import PixelData
from mmseg.models.backbones import ResNet
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

# BaseModel builds the data preprocessor through mmengine's root registry, which reaches
# mmseg's only in mmseg's scope (a Runner sets it from default_scope='mmseg').
pytestmark = pytest.mark.usefixtures('mmseg_scope')

CFG = dict(
    type='SiamEncoderDecoder',
    data_preprocessor=dict(type='DualInputSegDataPreProcessor', mean=[0.] * 6, std=[1.] * 6,
                           size_divisor=32),
    backbone=dict(type='ResNet', depth=18, out_indices=(0, 1, 2, 3), norm_cfg=dict(type='BN')),
    neck=dict(type='FeatureFusionNeck', policy='concat'),
    decode_head=dict(type='FCNHead', in_channels=2 * 512, in_index=3, channels=16, num_convs=1,
                     num_classes=2, norm_cfg=dict(type='BN')),
    auxiliary_head=dict(type='FCNHead', in_channels=2 * 256, in_index=2, channels=8,
                        num_convs=1, num_classes=2, norm_cfg=dict(type='BN'),
                        loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4)),
    test_cfg=dict(mode='whole'))


def _model(policy='concat', **head):
    torch.manual_seed(0)
    cfg = copy.deepcopy(CFG)
    cfg['neck']['policy'] = policy
    if policy != 'concat':
        cfg['decode_head']['in_channels'] = 512
        cfg['auxiliary_head']['in_channels'] = 256
    cfg['decode_head'].update(head)
    model = MODELS.build(ConfigDict(cfg))  # ConfigDict: heads read test_cfg.mode
    model.init_weights()
    return model.eval()


def _pair(seed=0, size=64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, size, size, generator=g), torch.randn(2, 3, size, size, generator=g)


def test_both_dates_go_through_the_same_backbone():
    model = _model()
    assert sum(isinstance(m, ResNet) for m in model.modules()) == 1  # one backbone, shared
    a, b = _pair()
    with torch.no_grad():
        fused = model.extract_feat(torch.cat([a, b], dim=1))
        fa, fb = model.backbone(a), model.backbone(b)
    assert len(fused) == 4
    for level, (f, x, y) in enumerate(zip(fused, fa, fb)):
        assert f.shape[1] == 2 * x.shape[1] == 2 * 64 * 2**level
        torch.testing.assert_close(f, torch.cat([x, y], dim=1), atol=1e-5, rtol=1e-5)


def test_abs_diff_logits_do_not_depend_on_date_order():
    a, b = _pair(1)
    with torch.no_grad():
        sym = _model('abs_diff')
        ab, ba = sym._forward(torch.cat([a, b], 1)), sym._forward(torch.cat([b, a], 1))
        torch.testing.assert_close(ab, ba, atol=1e-6, rtol=0)
        cat = _model('concat')  # order matters once the dates are concatenated
        assert (cat._forward(torch.cat([a, b], 1)) - cat._forward(torch.cat([b, a], 1))
                ).abs().max() > 1e-3


def test_loss_and_predict_through_the_data_preprocessor():
    model = _model()
    a, b = _pair(2)
    label = (a[:, 0] > b[:, 0]).long()  # (2, 64, 64)
    samples = [SegDataSample(gt_sem_seg=PixelData(data=label[i:i + 1])) for i in range(2)]
    for s in samples:
        s.set_metainfo(dict(img_shape=(64, 64), ori_shape=(64, 64), pad_shape=(64, 64)))
    data = dict(inputs=[torch.cat([a[i], b[i]]) for i in range(2)], data_samples=samples)
    model.train()
    losses = model(**model.data_preprocessor(data, True), mode='loss')
    assert set(losses) == {'decode.loss_ce', 'decode.acc_seg', 'aux.loss_ce', 'aux.acc_seg'}
    assert 0.3 < losses['decode.loss_ce'].item() < 3  # ~log(2) at initialisation
    model.eval()
    with torch.no_grad():
        preds = model.test_step(data)
    assert preds[0].pred_sem_seg.data.shape == (1, 64, 64)
    assert preds[0].seg_logits.data.shape == (2, 64, 64)


def test_errors_say_what_to_set():
    model = _model()
    with pytest.raises(ValueError, match='input has 3 channels, expected 2 x backbone_in'):
        model.extract_feat(torch.zeros(1, 3, 32, 32))
    cfg = copy.deepcopy(CFG)
    cfg.pop('neck')
    with pytest.raises(ValueError, match='needs a neck that fuses the two dates'):
        MODELS.build(cfg)
