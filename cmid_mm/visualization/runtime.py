"""Shared plumbing of the visualisation tools and hook: build the model, run the config's
real train pipeline on image files, and turn a batch into the pictures."""
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from .image import channel_stats, denormalize, titled_grid, to_numpy
from .matching import matched_pairs, match_rows
from .mim import eval_mode, mim_grid, mim_reconstruct


def unwrap(model):
    """The bare model of a DDP / model wrapper."""
    from mmengine.model import is_model_wrapper
    return model.module if is_model_wrapper(model) else model


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


def pipeline_batch(cfg, image_paths: Sequence[str], seed: int = 0) -> dict:
    """Run the config's real train pipeline on image files and collate like the dataloader.

    The global RNGs (python, numpy, torch) are seeded with ``seed`` first, so the crops,
    flips, colour augmentation and masks are the same on every call.

    Returns:
        ``{'inputs': [view A (B, N, H, W) uint8, view B ...], 'data_samples': [...]}``.
    """
    from mmengine.dataset import Compose, default_collate
    from mmengine.registry import init_default_scope
    from mmengine.runner import set_random_seed

    for p in image_paths:
        if not osp.isfile(p):
            raise FileNotFoundError(f'image {p!r} does not exist')
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    pipeline = Compose(train_pipeline(cfg))
    set_random_seed(seed)
    samples = [pipeline(dict(img_path=p, sample_idx=i)) for i, p in enumerate(image_paths)]
    return default_collate(samples)


def slice_batch(data: dict, n: int) -> dict:
    """The first ``n`` samples of a collated CMID batch."""
    return dict(inputs=[v[:n] for v in data['inputs']], data_samples=data['data_samples'][:n])


def stack_field(data_samples, key: str) -> np.ndarray:
    """``(B, ...)`` array of a per-sample field (``mask``, ``crop_bbox``, ``flip``, ...)."""
    values = []
    for ds in data_samples:
        if key not in ds:
            raise KeyError(f"data sample has no {key!r}: the train pipeline must end with "
                           "CMIDMultiView(...) and PackInputs(algorithm_keys=['crop_bbox', "
                           "'crop_src_shape', 'flip'])")
        values.append(to_numpy(ds.get(key)))
    return np.stack(values)


@torch.no_grad()
def batch_pictures(model, data: dict, num_samples: int = 1, scale: int = 1,
                   bands: Optional[Sequence[int]] = None, matches: bool = True,
                   sources: Optional[List[np.ndarray]] = None,
                   directions: Sequence[str] = ('a_to_b', 'b_to_a')
                   ) -> Dict[str, List[np.ndarray]]:
    """MIM grids and match pictures of the first samples of a raw (collated) CMID batch.

    The model's own data preprocessor normalises the views; the student reconstructs them in
    eval mode (BN running statistics, nothing updated; every module's mode is restored).

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
    model = unwrap(model)
    data = slice_batch(data, num_samples)
    with eval_mode(model):
        out = model.data_preprocessor(data, False)
        views, samples = out['inputs'], out['data_samples']
        masks = torch.as_tensor(stack_field(samples, 'mask'))
        recons, feats = mim_reconstruct(model, views, masks, return_feats=True)
    grid_hw = tuple(feats[0].shape[-2:])
    mean, std = channel_stats(model.data_preprocessor)
    flips = stack_field(samples, 'flip').astype(bool)
    pictures = dict(mim=[], matching=[])
    for i in range(len(samples)):
        pictures['mim'].append(mim_grid([v[i] for v in views], masks[i], [r[i] for r in recons],
                                        mean, std, bands, flips[i], scale))
        if not matches:
            continue
        boxes = stack_field(samples, 'crop_bbox')[i]
        src_shape = stack_field(samples, 'crop_src_shape')[i] \
            if getattr(model, 'reference_offsets', False) else None
        match = matched_pairs(boxes, flips[i], grid_hw, model.num_matches, src_shape,
                              getattr(model, 'reference_offsets', False))
        view_a, view_b = (denormalize(v[i], mean, std, bands) for v in views)
        rows = match_rows(view_a, view_b, match, grid_hw, scale, flips[i],
                          None if sources is None else sources[i], boxes, directions)
        pictures['matching'].append(titled_grid(rows))
    return pictures
