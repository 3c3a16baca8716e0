"""MIM panels (de-normalisation, mean fill, mask) and PCA -> RGB, checked pixel by pixel."""
import numpy as np
import pytest
import torch

from cmid_mm.visualization import (denormalize, mim_grid, mim_panels, pca_rgb,
                                   titled_grid)
from cmid_mm.visualization.image import PAD, TITLE_HEIGHT
from cmid_mm.visualization.mim import MASK_EDGE_COLOUR

MEAN = np.array([86.18, 91.93, 85.37])  # the configs' MillionAID statistics (0-255, RGB)
STD = np.array([34.65, 34.48, 35.88])


def _view_and_mask(seed=0):
    g = torch.Generator().manual_seed(seed)
    raw = torch.randint(0, 256, (3, 64, 64), generator=g).float()
    view = (raw - torch.tensor(MEAN).float()[:, None, None]) / \
        torch.tensor(STD).float()[:, None, None]
    mask = torch.zeros(16, 16, dtype=torch.uint8)  # stride-4 token grid of a 64 px view
    mask[:8, 8:] = 1  # the top-right 32 px block
    mask[8:, :8] = 1  # the bottom-left 32 px block
    return raw, view, mask


def test_denormalize_inverts_the_preprocessor_and_clips():
    raw, view, _ = _view_and_mask()
    img = denormalize(view, MEAN, STD)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img, raw.permute(1, 2, 0).numpy().astype(np.uint8))
    # out-of-range values are clipped, bands pick channels, grey for 1 channel
    wild = torch.full((3, 2, 2), 100.0)
    assert denormalize(wild, MEAN, STD).max() == 255
    assert denormalize(-wild, MEAN, STD).min() == 0
    np.testing.assert_array_equal(denormalize(view, MEAN, STD, bands=(2, 1, 0)), img[..., ::-1])
    grey = denormalize(view[:1], MEAN[:1], STD[:1])
    assert (grey[..., 0] == grey[..., 2]).all()
    with pytest.raises(ValueError, match='3 channels but the data preprocessor'):
        denormalize(view, MEAN[:2], STD[:2])


def test_mim_panels_mean_fill_mask_and_composite():
    raw, view, mask = _view_and_mask()
    recon = torch.randn(3, 64, 64)
    p = mim_panels(view, mask, recon, MEAN, STD)
    pm = p['pixel_mask']
    assert pm.shape == (64, 64) and pm.sum() == 2 * 32 * 32
    assert pm[0, 63] and pm[63, 0] and not pm[0, 0] and not pm[63, 63]
    for key in ('target', 'masked', 'recon', 'composite'):
        assert p[key].shape == (64, 64, 3) and p[key].dtype == np.uint8
    target = raw.permute(1, 2, 0).numpy().astype(np.uint8)
    np.testing.assert_array_equal(p['target'], target)
    # masked input: the per-channel mean of the whole (normalised) view, de-normalised
    fill = np.round(view.mean(dim=(1, 2)).numpy() * STD + MEAN).astype(np.uint8)
    np.testing.assert_array_equal(np.unique(p['masked'][pm], axis=0), fill[None])
    assert abs(fill.astype(float) - raw.mean(dim=(1, 2)).numpy()).max() <= 0.51
    np.testing.assert_array_equal(p['masked'][~pm], target[~pm])
    # reconstruction de-normalised and clipped
    rec = np.clip(np.round(recon.permute(1, 2, 0).numpy() * STD + MEAN), 0, 255)
    np.testing.assert_array_equal(p['recon'], rec.astype(np.uint8))
    # composite: visible pixels of the target, reconstruction inside the blocks, yellow edges
    np.testing.assert_array_equal(p['composite'][~pm], target[~pm])
    np.testing.assert_array_equal(p['composite'][5:27, 37:59], p['recon'][5:27, 37:59])
    edge = (p['composite'] == MASK_EDGE_COLOUR).all(-1) & pm
    assert edge[0, 32:64].all() and edge[0:32, 32].all() and edge[31, 32:64].all()
    assert not edge[1:31, 33:63].any()


def test_mim_grid_layout():
    _, view, mask = _view_and_mask()
    recon = torch.zeros(3, 64, 64)
    grid = mim_grid([view, view], torch.stack([mask, 1 - mask]), [recon, recon], MEAN, STD,
                    flips=[False, True], scale=2)
    h = w = 128
    assert grid.shape == (PAD + 2 * (h + TITLE_HEIGHT + PAD), PAD + 4 * (w + PAD), 3)
    # second row, second column = masked input of view B (mask inverted), enlarged x2
    y0, x0 = PAD + (h + TITLE_HEIGHT + PAD) + TITLE_HEIGHT, PAD + (w + PAD)
    panel = grid[y0:y0 + h, x0:x0 + w]
    p = mim_panels(view, 1 - mask, recon, MEAN, STD)
    np.testing.assert_array_equal(panel, p['masked'].repeat(2, 0).repeat(2, 1))
    with pytest.raises(ValueError, match='one of each per view'):
        mim_grid([view], mask[None].repeat(2, 1, 1), [recon, recon], MEAN, STD)


def test_titled_grid_rejects_bad_panels():
    with pytest.raises(ValueError, match='uint8'):
        titled_grid([[('x', np.zeros((4, 4, 3), np.float32))]])


def test_pca_rgb_matches_numpy_eigenvectors_and_range():
    rng = np.random.default_rng(0)
    c, h, w = 16, 6, 5
    # two kinds of pixels (left / right) + small noise: component 1 must separate them
    base = rng.normal(size=(2, c)) * 3
    labels = (np.arange(w)[None, :] >= 2).repeat(h, 0)
    feat = base[labels.astype(int)].transpose(2, 0, 1) + 0.01 * rng.normal(size=(c, h, w))
    rgb, ratio = pca_rgb(torch.from_numpy(feat), return_variance=True)
    assert rgb.shape == (h, w, 3) and rgb.dtype == np.float32
    assert rgb.min() >= 0 and rgb.max() <= 1
    np.testing.assert_allclose(rgb.reshape(-1, 3).min(0), 0, atol=1e-6)
    np.testing.assert_allclose(rgb.reshape(-1, 3).max(0), 1, atol=1e-6)
    assert ratio[0] > 0.99 and ratio.sum() <= 1 + 1e-9
    # red = first principal direction (numpy eigh of the covariance), min-max scaled
    x = feat.reshape(c, -1).T
    x = x - x.mean(0)
    vec = np.linalg.eigh(x.T @ x)[1][:, -1]
    proj = x @ vec
    proj = proj if proj[np.abs(proj).argmax()] > 0 else -proj  # the documented sign rule
    np.testing.assert_allclose(rgb[..., 0].reshape(-1),
                               (proj - proj.min()) / (proj.max() - proj.min()), atol=1e-5)
    # the two groups get red 0 and 1 (within the noise)
    assert abs(rgb[..., 0][labels].mean() - rgb[..., 0][~labels].mean()) > 0.95


def test_pca_rgb_upsampling_and_joint_fit():
    rng = np.random.default_rng(1)
    feat = torch.from_numpy(rng.normal(size=(2, 8, 4, 4)))
    near = pca_rgb(feat, (32, 32), mode='nearest')
    small = pca_rgb(feat)
    assert near.shape == (2, 32, 32, 3) and small.shape == (2, 4, 4, 3)
    np.testing.assert_allclose(near[:, ::8, ::8], small, atol=1e-6)  # nearest: 8x8 cells
    bil = pca_rgb(feat, (37, 50))
    assert bil.shape == (2, 37, 50, 3) and bil.min() >= 0 and bil.max() <= 1
    # one PCA for the batch: an image repeated in the batch gets the same colours
    same = pca_rgb(torch.stack([feat[0], feat[0]]))
    np.testing.assert_array_equal(same[0], same[1])
    # a constant map (no variance) is mid-grey, not NaN
    np.testing.assert_array_equal(pca_rgb(torch.ones(4, 3, 3)), np.full((3, 3, 3), 0.5))
    with pytest.raises(ValueError, match="'bilinear' or 'nearest'"):
        pca_rgb(feat, mode='bicubic')
