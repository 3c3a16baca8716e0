"""BITHead: shapes, tokenizers on hand-built maps, Siamese symmetry, loss, errors."""
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

IN_CH = 8


def _head(**kw):
    cfg = dict(type='BITHead', in_channels=IN_CH, channels=16, embed_dims=16, num_heads=2,
               enc_depth=1, dec_depth=2, token_len=4, pre_upsample=2, upsample_size=4,
               num_classes=2, dropout_ratio=0., classifier_norm_cfg=dict(type='BN'))
    cfg.update(kw)
    torch.manual_seed(0)
    head = MODELS.build(cfg)
    head.init_weights()
    return head


def _pair_features(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, IN_CH, 4, 4, generator=g), torch.randn(2, IN_CH, 4, 4, generator=g)


def test_output_resolution_and_token_count():
    head = _head().eval()
    a, b = _pair_features()
    out = head([torch.cat([a, b], dim=1)])
    assert out.shape == (2, 2, 4 * 2 * 4, 4 * 2 * 4)  # pre_upsample 2 x upsample_size 4
    assert head.pos_embedding.shape == (1, 8, 16)  # 2 dates x 4 tokens x channels
    assert head.tokenize(torch.randn(3, 16, 5, 7)).shape == (3, 4, 16)


def test_semantic_tokens_are_attention_weighted_means():
    head = _head()
    # a map constant over pixels: every token (a convex combination of pixels) equals it
    x = torch.arange(16.).view(1, 16, 1, 1).expand(2, 16, 3, 5).contiguous()
    tokens = head.tokenize(x)
    torch.testing.assert_close(tokens, torch.arange(16.).expand(2, 4, 16), atol=1e-5, rtol=0)
    # a one-pixel-hot map: token l = softmax weight of that pixel in attention map l
    x = torch.zeros(1, 16, 2, 2)
    x[0, :, 1, 0] = 1.
    attn = head.token_attention(x).flatten(2).softmax(-1)  # (1, 4, 4)
    torch.testing.assert_close(head.tokenize(x), attn[:, :, 2:3].expand(1, 4, 16))


def test_pooled_tokens_without_tokenizer():
    head = _head(use_tokenizer=False, pool_size=2, pool_mode='max')
    assert head.token_len == 4 and head.pos_embedding.shape == (1, 8, 16)
    x = torch.arange(16.).view(1, 1, 4, 4).expand(1, 16, 4, 4)
    # max of each 2x2 quadrant of [[0..3], [4..7], [8..11], [12..15]], row-major
    assert head.tokenize(x)[0, :, 0].tolist() == [5., 7., 13., 15.]
    head = _head(use_tokenizer=False, pool_size=2, pool_mode='avg')
    assert head.tokenize(x)[0, :, 0].tolist() == [2.5, 4.5, 10.5, 12.5]


def test_siamese_symmetry_broken_only_by_the_position_embedding():
    a, b = _pair_features(1)
    with torch.no_grad():
        head = _head(enc_with_pos=False).eval()
        torch.testing.assert_close(head([torch.cat([a, b], 1)]), head([torch.cat([b, a], 1)]),
                                   atol=1e-5, rtol=0)
        head = _head(enc_with_pos=True).eval()
        diff = head([torch.cat([a, b], 1)]) - head([torch.cat([b, a], 1)])
        assert diff.abs().max() > 1e-4


def test_loss_reaches_every_parameter():
    head = _head().train()
    a, b = _pair_features(2)
    label = torch.randint(0, 2, (2, 1, 32, 32))
    samples = [SegDataSample(gt_sem_seg=PixelData(data=label[i])) for i in range(2)]
    losses = head.loss([torch.cat([a, b], 1)], samples, train_cfg=dict())
    assert 0.3 < losses['loss_ce'].item() < 3
    losses['loss_ce'].backward()
    no_grad = [n for n, p in head.named_parameters() if p.grad is None or not p.grad.any()]
    # The last decoder block's output bias is added to both dates alike and cancels in
    # |date1 - date2|: its gradient is exactly zero; every other parameter learns.
    assert no_grad == ['decoder.1.mlp.3.bias']


def test_resize_concat_gathers_the_levels_of_each_date():
    # two fused levels (date 1 | date 2 on channels): 4+4 channels at 4x4, 6+6 at 2x2
    head = _head(in_channels=[4, 6], in_index=[0, 1], input_transform='resize_concat')
    assert head.in_channels == 10
    g = torch.Generator().manual_seed(3)
    a0, b0 = torch.randn(1, 4, 4, 4, generator=g), torch.randn(1, 4, 4, 4, generator=g)
    a1, b1 = torch.randn(1, 6, 2, 2, generator=g), torch.randn(1, 6, 2, 2, generator=g)
    date1, date2 = head.split_dates([torch.cat([a0, b0], 1), torch.cat([a1, b1], 1)])
    assert date1.shape == date2.shape == (1, 10, 4, 4)
    torch.testing.assert_close(date1[:, :4], a0)  # level 0 of date 1, then ...
    torch.testing.assert_close(date2[:, :4], b0)
    up = torch.nn.functional.interpolate(a1, size=(4, 4), mode='bilinear')
    torch.testing.assert_close(date1[:, 4:], up)  # ... level 1 of date 1, resized
    assert head([torch.cat([a0, b0], 1), torch.cat([a1, b1], 1)]).shape == (1, 2, 32, 32)


def test_errors():
    head = _head()
    with pytest.raises(ValueError, match=r"each date has 4 channels but in_channels=8"):
        head([torch.zeros(1, IN_CH, 4, 4)])
    with pytest.raises(ValueError, match=r"levels with \[7\] channels.*policy='concat'"):
        head([torch.zeros(1, 7, 4, 4)])
    with pytest.raises(ValueError, match='embed_dims=10 must be divisible by num_heads=4'):
        _head(embed_dims=10, num_heads=4)
    with pytest.raises(ValueError, match="pool_mode must be 'max' or 'avg'"):
        _head(use_tokenizer=False, pool_mode='median')
