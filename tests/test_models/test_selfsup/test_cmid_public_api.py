"""CMID's public pieces (reconstruct, cell_centres, match): the loss and the visualisation
tools compute with them, so a picture shows what training computes."""
import copy

import numpy as np
import pytest
import torch
from mmpretrain.registry import MODELS

from cmid_mm.models.utils import gather_cells
from cmid_mm.visualization import matched_pairs
from cmid_mm.visualization.mim import mim_reconstruct
from tests.test_models.test_selfsup.test_cmid import CONFIGS, _batch, _setup_hub


@pytest.mark.parametrize('arch', ['swin', 'vit'])
def test_loss_rec_is_the_reconstruction_of_reconstruct(arch):
    """loss_rec from CMID.loss equals the MIM losses of CMID.reconstruct's output, bit for
    bit (LayerNorm backbones, eval mode so that no drop path draws random numbers: the
    teacher's forward in loss() would draw first)."""
    _setup_hub()
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(CONFIGS[arch])).eval()
    views, samples = _batch()
    probe = copy.deepcopy(model)
    recons, feats = probe.reconstruct(views, samples, return_feats=True)
    assert [r.shape for r in recons] == [v.shape for v in views]
    masks = probe.view_masks(samples)
    rec = sum(sum(probe.mim_head.loss_by_recon(r, v, m).values())
              for r, v, m in zip(recons, views, masks)) / 2
    losses = model.loss(views, samples)
    assert torch.equal(losses['loss_rec'], rec)
    # the visualisation's entry point is the same computation
    with torch.no_grad():
        vis = mim_reconstruct(probe, views, torch.stack(masks, 1))
    for a, b in zip(vis, recons):
        assert torch.equal(a, b)


def test_reconstruct_changes_with_the_mask_only_through_the_masked_input():
    _setup_hub()
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(CONFIGS['swin'])).eval()
    views, samples = _batch(batch_size=2)
    base = model.reconstruct(views, samples)
    for ds in samples:
        ds.set_mask(np.zeros((2, 16, 16), np.uint8))
    unmasked = model.reconstruct(views, samples)
    assert not torch.equal(base[0], unmasked[0])
    # with an empty mask the student decodes its plain (token-free) features
    feat = model.backbone(views[0])[-1]
    assert torch.allclose(unmasked[0], model.mim_head(feat), atol=1e-5)


def test_match_is_what_the_local_loss_and_the_pictures_use():
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(CONFIGS['vit']))  # 4x4 grid, 6 matches
    views, samples = _batch()
    grid = (4, 4)
    (qa, kb), (qb, ka) = model.match(samples, grid)
    assert qa.shape == kb.shape == (4, 6)
    centres = model.cell_centres(samples, grid)
    assert centres.shape == (4, 2, 16, 2)
    for i, ds in enumerate(samples):
        m = matched_pairs(ds.crop_bbox, ds.flip, grid, model.num_matches)
        np.testing.assert_array_equal(m['a_to_b'], torch.stack([qa[i], kb[i]], 1).numpy())
        np.testing.assert_array_equal(m['b_to_a'], torch.stack([ka[i], qb[i]], 1).numpy())
        np.testing.assert_array_equal(m['centres'], centres[i].numpy())
    # the matched teacher cell is the nearest cell of B to the student cell of A
    d = torch.cdist(centres[:, 0], centres[:, 1])  # (B, 16, 16)
    for i in range(4):
        for q, k in zip(qa[i], kb[i]):
            assert d[i, q, k] == d[i, q].min()
    feat = torch.randn(4, 3, 4, 4)
    assert gather_cells(feat, qa).shape == (4, 3, 6)


def test_missing_field_is_a_clear_error():
    model = MODELS.build(copy.deepcopy(CONFIGS['resnet']))
    views, samples = _batch(batch_size=1)
    del samples[0].crop_bbox
    with pytest.raises(KeyError, match="no 'crop_bbox'.*PackInputs"):
        model.match(samples, (2, 2))
