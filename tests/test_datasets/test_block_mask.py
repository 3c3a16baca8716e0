import numpy as np
import pytest

from cmid_mm.datasets import BlockMaskGenerator


def blocks_of(mask, tokens_per_block):
    """(gh, gw) block values of a token mask; asserts every block is constant."""
    h, w = mask.shape
    gh, gw = h // tokens_per_block, w // tokens_per_block
    tiles = mask.reshape(gh, tokens_per_block, gw, tokens_per_block)
    assert (tiles.min(axis=(1, 3)) == tiles.max(axis=(1, 3))).all()
    return tiles[:, 0, :, 0]


def test_reference_setting_224():
    np.random.seed(0)
    out = BlockMaskGenerator()(dict(img=np.zeros((224, 224, 3), np.uint8)))
    mask = out['mask']
    assert mask.shape == (56, 56) and mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 1}
    assert mask.sum() == 30 * 64  # ceil(49 * 0.6) = 30 blocks of 8x8 tokens
    assert blocks_of(mask, 8).sum() == 30


def test_rectangular_input():
    np.random.seed(1)
    gen = BlockMaskGenerator(input_size=(64, 96), block_size=32, token_stride=4,
                             mask_ratio=0.6)
    mask = gen(dict(img=np.zeros((64, 96), np.float32)))['mask']
    assert mask.shape == (16, 24)
    assert blocks_of(mask, 8).sum() == 4  # ceil(6 * 0.6) = ceil(3.6)
    assert mask.sum() == 4 * 64


def test_other_stride_and_ratio():
    np.random.seed(2)
    mask = BlockMaskGenerator(input_size=32, block_size=16, token_stride=8,
                              mask_ratio=0.25)({})['mask']
    assert mask.shape == (4, 4)
    assert blocks_of(mask, 2).sum() == 1  # ceil(4 * 0.25) = 1, exact: no extra block


def test_uniform_over_blocks_and_seeded():
    gen = BlockMaskGenerator(input_size=64, block_size=32, token_stride=4, mask_ratio=0.5)
    np.random.seed(3)
    counts = sum(blocks_of(gen({})['mask'], 8).astype(int) for _ in range(2000))
    np.testing.assert_allclose(counts / 2000, 0.5, atol=0.04)  # 2 of 4 blocks each time
    np.random.seed(7)
    first = gen({})['mask']
    np.random.seed(7)
    np.testing.assert_array_equal(gen({})['mask'], first)


@pytest.mark.parametrize('kwargs, match', [
    (dict(input_size=100), 'input_size=100'),
    (dict(input_size=(224, 200)), r'input_size=\(224, 200\)'),
    (dict(block_size=30, input_size=210), 'token_stride=4'),
    (dict(mask_ratio=0.), 'mask_ratio=0.0'),
    (dict(mask_ratio=1.), 'mask_ratio=1.0'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BlockMaskGenerator(**kwargs)


def test_image_size_mismatch():
    with pytest.raises(ValueError, match=r'\(192, 192\)'):
        BlockMaskGenerator()(dict(img=np.zeros((192, 192, 3), np.uint8)))


@pytest.mark.parametrize('ratio', [0.0, 1.0, -0.1, 1.5])
def test_mask_ratio_outside_0_1_names_the_value(ratio):
    with pytest.raises(ValueError, match=rf'mask_ratio={ratio} must be in \(0, 1\)'):
        BlockMaskGenerator(input_size=128, block_size=32, mask_ratio=ratio)


def test_input_size_not_divisible_by_block_names_both():
    with pytest.raises(ValueError, match=r'input_size=100 .*block_size=32'):
        BlockMaskGenerator(input_size=100, block_size=32)
    with pytest.raises(ValueError, match=r'block_size=30 .*token_stride=4'):
        BlockMaskGenerator(input_size=120, block_size=30, token_stride=4)
