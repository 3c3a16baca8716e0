"""Shared plumbing of the visualisation tools and hook: build the model, run the config's
real train pipeline on image files, and turn a batch into the pictures.

Every picture of an image is a function of that image alone (and of the seed, the model and
the options), never of the other images of the call or of their order:

- :func:`pipeline_batch` reseeds the RNGs before each image from ``(seed, file name)``, so an
  image's crops, flips, colour augmentation and masks do not depend on what was drawn for the
  images before it;
- :func:`batch_pictures` normalises and runs the model on one sample at a time (a batch of 1):
  the kernels and reduction orders a library picks may depend on the batch size, so the only
  way to make a sample's numbers independent of the rest of the batch is to compute them
  without the rest of the batch.

Hence, on one machine with one thread count, rendering image A alone and rendering A among
other images (before or after them) give the same pixels, bit for bit. Across machines the
pixels may still differ by rounding (CPUs differ in their kernels).
"""
import os.path as osp
import zlib
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from cmid_mm.models.selfsup.cmid import stack_field as _stack_field
from cmid_mm.models.utils.wrappers import unwrap_model
from .image import channel_stats, denormalize, titled_grid
from .matching import match_rows, pairs_dict
from .mim import eval_mode, mim_grid

VIS_STREAM = 0x5EED_0715  # separates the tools' image seeds from the training streams


def build_cmid(cfg, checkpoint: Optional[str] = None, device: str = 'cpu'):
    """Build ``cfg.model`` in its default scope and load a CMID training checkpoint.

    The checkpoint must be a full training checkpoint of the same config (student, teacher,
    MIM decoder: ``state_dict`` of ``tools/train.py``'s ``epoch_*.pth`` / ``iter_*.pth``);
    the whole model is loaded strictly. Without a checkpoint the model keeps its random
    initialisation (enough for geometry-only pictures such as the matching). Returns the
    model in eval mode.
    """
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model_cfg = cfg.model.copy()
    model = MODELS.build(model_cfg)
    if checkpoint is not None:
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist: pass an '
                                    'epoch_*.pth / iter_*.pth of a CMID training run')
        ckpt = torch.load(checkpoint, map_location='cpu', weights_only=True)
        state_dict = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
        if not isinstance(state_dict, dict):
            raise TypeError(f'{checkpoint!r} holds a {type(ckpt).__name__}, not a state dict')
        if not any(k.startswith('mim_head.') for k in state_dict):
            raise KeyError(f'{checkpoint!r} has no mim_head.* weights: it is not a full CMID '
                           'training checkpoint (an exported backbone cannot reconstruct). '
                           'Pass an epoch_*.pth / iter_*.pth from the work dir.')
        try:
            model.load_state_dict(state_dict, strict=True)
        except RuntimeError as e:
            raise ValueError(f'{checkpoint!r} does not fit the model of the config: use the '
                             'config the checkpoint was trained with (the copy in its work '
                             f'dir), or fix the architecture with --cfg-options. torch says: '
                             f'{e}') from e
    return model.to(device).eval()


def train_pipeline(cfg) -> list:
    """``cfg.train_dataloader.dataset.pipeline`` (the one CMID trains with)."""
    try:
        return list(cfg.train_dataloader.dataset.pipeline)
    except AttributeError as e:
        raise KeyError('the config has no train_dataloader.dataset.pipeline; pass a CMID '
                       'pretraining config') from e


def image_seed(seed: int, image_path: str) -> np.ndarray:
    """The 128-bit RNG seed of one image in the visualisation tools: a hash of ``seed`` and the
    CRC-32 of the file's basename (not of its position among the images, nor of the folder,
    so the same file drawn alone or with others, from any working directory, gets the same
    draws)."""
    from cmid_mm.datasets.transforms.sample_seed import derive_seed
    return derive_seed(VIS_STREAM, int(seed), zlib.crc32(osp.basename(str(image_path)).encode()))


def pipeline_batch(cfg, image_paths: Sequence[str], seed: int = 0) -> dict:
    """Run the config's real train pipeline on image files and collate like the dataloader.

    Before each image the global RNGs (python, numpy, torch) are seeded with
    :func:`image_seed` ``(seed, path)``, so an image's crops, flips, colour augmentation and
    masks are a function of the seed and that image's file name only: the same on every call,
    whatever other images are passed and in which order. (Two files with the same basename get
    the same draws.) The global RNGs are left in the state of the last image.

    Returns:
        ``{'inputs': [view A (B, N, H, W) uint8, view B ...], 'data_samples': [...]}``.
    """
    from mmengine.dataset import Compose, default_collate
    from mmengine.registry import init_default_scope

    from cmid_mm.datasets.transforms.loading import find_transforms
    from cmid_mm.datasets.transforms.sample_seed import PerSampleSeed, seed_global_rngs

    if not image_paths:
        raise ValueError('pipeline_batch needs at least one image file')
    for p in image_paths:
        if not osp.isfile(p):
            raise FileNotFoundError(f'image {p!r} does not exist')
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    pipeline = Compose(train_pipeline(cfg))
    # The images are seeded here, one by one; the config's PerSampleSeed (armed only by
    # ExactResumeHook in a training run) is meant to pass them through.
    for t in find_transforms(pipeline, PerSampleSeed):
        t.when_unarmed = 'ignore'
    samples = []
    for p in image_paths:
        seed_global_rngs(image_seed(seed, p), seed_torch=True)
        # sample_idx 0 for every image: nothing may depend on the image's position
        samples.append(pipeline(dict(img_path=p, sample_idx=0)))
    return default_collate(samples)


def slice_batch(data: dict, n: int) -> dict:
    """The first ``n`` samples of a collated CMID batch."""
    return dict(inputs=[v[:n] for v in data['inputs']], data_samples=data['data_samples'][:n])


def sample_batch(data: dict, i: int) -> dict:
    """Sample ``i`` of a collated CMID batch as a batch of 1."""
    return dict(inputs=[v[i:i + 1] for v in data['inputs']],
                data_samples=data['data_samples'][i:i + 1])


def stack_field(data_samples, key: str) -> np.ndarray:
    """``(B, ...)`` array of a per-sample field (``mask``, ``crop_bbox``, ``flip``, ...);
    :func:`cmid_mm.models.selfsup.cmid.stack_field` as numpy."""
    return _stack_field(data_samples, key).cpu().numpy()


@torch.no_grad()
def batch_pictures(model, data: dict, num_samples: int = 1, scale: int = 1,
                   bands: Optional[Sequence[int]] = None, matches: bool = True,
                   sources: Optional[List[np.ndarray]] = None,
                   directions: Sequence[str] = ('a_to_b', 'b_to_a')
                   ) -> Dict[str, List[np.ndarray]]:
    """MIM grids and match pictures of the first samples of a raw (collated) CMID batch.

    Each sample is handled on its own, as a batch of 1: the model's data preprocessor
    normalises its views and the student reconstructs them in eval mode (BN running
    statistics, nothing updated; every module's mode is restored). A sample's pictures are
    therefore a function of that sample alone, bit for bit the same whatever else is in the
    batch (see the module docstring).

    Args:
        model: a CMID model (wrappers are unwrapped).
        data: a collated batch as the dataloader gives it (uint8 views, data samples).
        num_samples: how many samples from the start of the batch.
        scale: integer enlargement of the panels.
        bands: channels shown as RGB.
        matches: also draw the matched cells.
        sources: optional RGB source images (one per sample) for the matching pictures.
        directions: directions of the local loss drawn (a row each), ``'a_to_b'`` (student A
            -> teacher B) and / or ``'b_to_a'``.

    Returns:
        ``{'mim': [grid per sample], 'matching': [picture per sample]}`` (uint8 RGB).
    """
    model = unwrap_model(model)
    n = min(int(num_samples), len(data['data_samples']))
    mean, std = channel_stats(model.data_preprocessor)
    pictures = dict(mim=[], matching=[])
    for i in range(n):
        with eval_mode(model):
            out = model.data_preprocessor(sample_batch(data, i), False)
            views, samples = out['inputs'], out['data_samples']
            recons, feats = model.reconstruct(views, samples, return_feats=True)
        grid_hw = tuple(feats[0].shape[-2:])
        masks = stack_field(samples, 'mask')
        flips = stack_field(samples, 'flip')[0].astype(bool)
        pictures['mim'].append(mim_grid([v[0] for v in views], masks[0], [r[0] for r in recons],
                                        mean, std, bands, flips, scale))
        if not matches:
            continue
        match = pairs_dict(model.match(samples, grid_hw), model.cell_centres(samples, grid_hw))
        view_a, view_b = (denormalize(v[0], mean, std, bands) for v in views)
        rows = match_rows(view_a, view_b, match, grid_hw, scale, flips,
                          None if sources is None else sources[i],
                          stack_field(samples, 'crop_bbox')[0], directions)
        pictures['matching'].append(titled_grid(rows))
    return pictures
