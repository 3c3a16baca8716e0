"""CMID: Contrastive Mask Image Distillation (Muhtar et al., IEEE TGRS 2023).

A student (backbone with a mask token + MIM decoder + global projector + local head) and an EMA
teacher (backbone + global projector + local head) see two crops A and B of one image. The
student sees both views masked, the teacher both views whole. Three losses:

* ``loss_rec``: the student reconstructs each view's pixels from its masked version;
* ``loss_global``: MoCo-v2 InfoNCE, student(masked A) vs teacher(B) (and B vs A) with a queue;
* ``loss_local``: DINO cross-entropy between position-matched cells of the last feature maps,
  student(masked A) vs teacher(B) (and B vs A).
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.logging import MessageHub
from mmpretrain.models import BaseSelfSupervisor, CosineEMA
from mmpretrain.models.backbones import ResNet
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import nn

from cmid_mm.models.utils.deprecation import warn_renamed
from cmid_mm.models.utils.mean_fill import mean_fill, upsample_mask
from cmid_mm.models.utils.position_matching import (DIRECTIONS, gather_cells, match_views,
                                                    view_cell_centers)

#: cmid_mm < 0.3 called ``local_head`` ``local_loss`` (checkpoint keys ``local_loss.*``).
OLD_LOCAL_HEAD_PREFIX = 'local_loss.'


def stack_field(data_samples: Sequence[DataSample], key: str, device=None) -> torch.Tensor:
    """Stack a per-sample field with a leading view axis (``mask``, ``crop_bbox``, ``flip``,
    ``crop_src_shape``) into a (B, V, ...) tensor."""
    values = [ds.get(key) for ds in data_samples]
    if any(v is None for v in values):
        raise KeyError(f'data sample has no {key!r}: the train pipeline must end with '
                       "CMIDMultiView(...) and PackInputs(algorithm_keys=['crop_bbox', "
                       "'crop_src_shape', 'flip'])")
    return torch.stack([torch.as_tensor(np.asarray(v)) for v in values]).to(device)


def _local_head_cfg(local_head: Optional[dict], local_loss: Optional[dict]) -> dict:
    """``local_head``, with the deprecated ``local_loss`` config key folded in."""
    if local_loss is None:
        if local_head is None:
            raise TypeError("CMID needs local_head=dict(type='DINOLocalHead', "
                            'out_channels=...) (the DINO loss with its centre)')
        return local_head
    warn_renamed('local_loss', 'local_head', what='CMID config key')
    if local_head is None:
        return local_loss
    # A config inheriting a base that has ``local_head`` and overriding ``local_loss`` (or
    # --cfg-options model.local_loss.<key>=...) gives both: merged as mmengine merged the
    # override into the base's ``local_loss`` before the rename (the override wins, its type
    # too, e.g. a subclass of the old DINOLocalLoss).
    merged = dict(local_head)
    merged.update(local_loss)
    if merged.get('type') == 'DINOLocalLoss' and local_head.get('type') == 'DINOLocalHead':
        merged['type'] = 'DINOLocalHead'  # the same class under its new name
    return merged


def _load_old_local_loss_keys(module, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs) -> None:
    """Load checkpoints of cmid_mm < 0.3: ``local_loss.center`` -> ``local_head.center``."""
    old = prefix + OLD_LOCAL_HEAD_PREFIX
    for key in [k for k in state_dict if k.startswith(old)]:
        new = prefix + 'local_head.' + key[len(old):]
        value = state_dict.pop(key)
        state_dict.setdefault(new, value)


def _contiguous_state(module: nn.Module, state_dict: dict, prefix: str,
                      local_metadata: dict) -> None:
    """State-dict post-hook: tensors of ``module`` in the default (contiguous) layout."""
    for k, v in state_dict.items():
        if k.startswith(prefix) and isinstance(v, torch.Tensor) \
                and not isinstance(v, nn.Parameter) and not v.is_contiguous():
            state_dict[k] = v.contiguous()


@MODELS.register_module()
class CMID(BaseSelfSupervisor):
    """CMID self-supervised algorithm.

    Public pieces of the step (the visualisation tools use them, so their pictures show what
    training computes): :meth:`reconstruct` (the student's masked forward and MIM
    reconstruction of each view), :meth:`cell_centres` and :meth:`match` (the position-matched
    cells of both directions of ``L_local``).

    Checkpoints of cmid_mm < 0.3 (``local_loss.center``) load unchanged: a load-state-dict
    pre-hook renames them to ``local_head.center``.

    Args:
        backbone (dict): a masked backbone whose ``forward(x, mask)`` takes a (B, H/4, W/4)
            mask, e.g. ``CMIDResNet`` / ``CMIDSwinTransformer`` / ``CMIDVisionTransformer``.
            Its last output is the feature map all losses use (stride 32, or 16 for ViT/16).
        mim_head (dict): pixel decoder + reconstruction losses (``CMIDMIMHead``).
        global_neck (dict): global projector, e.g. ``MoCoV2Neck`` (avgpool-fc-relu-fc).
        global_head (dict): InfoNCE with a queue (``QueueContrastiveHead``).
        local_neck (dict): DINO projection of cell features (``CMIDLocalNeck``).
        local_head (dict): DINO loss with its centre and teacher temperature
            (``DINOLocalHead``), as ``global_head`` holds the queue.
        base_momentum (float): EMA update weight at the start (0.004 = decay 0.996); cosine
            to ``end_momentum`` (0.0 = decay 1.0) over all iterations.
        num_matches (int): student cells kept by position matching (20 of 7x7 in the paper).
        reference_offsets (bool): reproduce the reference code's crop-offset bug in position
            matching (offsets as fractions, method.md §2.6) to compare with its released models.
        loss_weights (dict): weights of ``loss_rec``, ``loss_global``, ``loss_local`` (1 each).
        local_loss (dict, deprecated): the old name of ``local_head`` (cmid_mm < 0.3); warns.
            Given together with ``local_head``, its keys override ``local_head``'s.
        joint_views (bool): run both views through the backbone in one pass (student and
            teacher), instead of one pass per view as the reference does. Same losses up to
            float rounding for backbones without batch statistics (Swin, ViT: LayerNorm);
            with BatchNorm (ResNet) each BN layer then normalises over both views together
            (2B images) and updates its running statistics once per step instead of twice.
            Off by default: on 2 CPU cores at batch 8 it was 3 % faster for Swin-T and 9 %
            slower for ResNet-50 (docs/benchmarks.md); measure on your hardware.
        channels_last (bool, optional): give the backbones (student and teacher) their
            input views and convolution weights in channels-last (NHWC) memory layout, so
            that convolutions, pooling and BatchNorm run in oneDNN's NHWC kernels all the way
            through (no layout conversions); the feature maps come out channels-last. The
            same values up to float rounding. ``None`` (default): on for mmpretrain
            ``ResNet`` backbones (``CMIDResNet``), off otherwise (Swin / ViT run on tokens).
            Parameter names and shapes are unchanged and ``state_dict()`` returns the usual
            contiguous layout, so checkpoints are as without it.
    """

    def __init__(self,
                 backbone: dict,
                 mim_head: dict,
                 global_neck: dict,
                 global_head: dict,
                 local_neck: dict,
                 local_head: Optional[dict] = None,
                 base_momentum: float = 0.004,
                 end_momentum: float = 0.0,
                 num_matches: int = 20,
                 reference_offsets: bool = False,
                 loss_weights: Optional[dict] = None,
                 joint_views: bool = False,
                 local_loss: Optional[dict] = None,
                 channels_last: Optional[bool] = None,
                 pretrained: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[List[dict], dict]] = None) -> None:
        super().__init__(
            backbone=backbone,
            pretrained=pretrained,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.mim_head = MODELS.build(mim_head)
        self.global_neck = MODELS.build(global_neck)
        self.global_head = MODELS.build(global_head)
        self.local_neck = MODELS.build(local_neck)
        self.local_head = MODELS.build(_local_head_cfg(local_head, local_loss))
        self.channels_last = (isinstance(self.backbone, ResNet)
                              if channels_last is None else bool(channels_last))
        if self.channels_last:
            # the convolution weights in NHWC too (oneDNN reorders none per call); the state
            # dict stays in the usual layout, so checkpoints are as before
            self.backbone.register_state_dict_post_hook(_contiguous_state)
            self.backbone.to(memory_format=torch.channels_last)
        # The teacher mirrors backbone + global projector + local head (not the MIM decoder).
        # Its first update (step 0) copies the student exactly (layout and hooks included).
        self.teacher = CosineEMA(
            self._student_modules(),
            momentum=base_momentum,
            end_momentum=end_momentum)
        self.num_matches = num_matches
        self.reference_offsets = reference_offsets
        weights = dict(loss_rec=1.0, loss_global=1.0, loss_local=1.0)
        unknown = set(loss_weights or {}) - set(weights)
        if unknown:
            raise KeyError(f'loss_weights has unknown keys {sorted(unknown)}; use '
                           f'{sorted(weights)}')
        weights.update({k: float(v) for k, v in (loss_weights or {}).items()})
        if not all(np.isfinite(list(weights.values()))):  # the finite check is on raw terms
            raise ValueError(f'loss_weights must be finite numbers; got {weights}')
        self.loss_weights = weights
        self.joint_views = joint_views
        self.register_load_state_dict_pre_hook(_load_old_local_loss_keys)

    @property
    def local_loss(self) -> nn.Module:
        """Deprecated name of :attr:`local_head` (cmid_mm < 0.3)."""
        warn_renamed('CMID.local_loss', 'CMID.local_head', what='attribute')
        return self.local_head

    def init_weights(self) -> None:
        """mmengine's initialisation, run on the usual (contiguous) weight layout: random
        fills write memory in order, so on NHWC weights the same seed would put the same
        numbers in other places than without ``channels_last``."""
        backbones = (self.backbone, self.teacher.module.backbone)
        if self.channels_last:
            for backbone in backbones:
                backbone.to(memory_format=torch.contiguous_format)
        super().init_weights()
        if self.channels_last:
            for backbone in backbones:
                backbone.to(memory_format=torch.channels_last)

    def _student_modules(self) -> nn.ModuleDict:
        """The student modules the teacher mirrors (same keys as ``self.teacher.module``)."""
        return nn.ModuleDict(
            dict(backbone=self.backbone, global_neck=self.global_neck,
                 local_neck=self.local_neck))

    def extract_feat(self, inputs: torch.Tensor) -> tuple:
        """Student backbone features of unmasked images: the tuple of ``out_indices`` maps."""
        return self.backbone(inputs)

    def _per_view(self, backbone: nn.Module, views: List[torch.Tensor],
                  masks: Optional[List[torch.Tensor]] = None) -> List[torch.Tensor]:
        """Last feature map of each view: one pass per view, or one joint pass of 2B images."""
        if self.channels_last:
            views = [v.contiguous(memory_format=torch.channels_last) for v in views]
        args = [views] if masks is None else [views, masks]
        if self.joint_views:
            return list(backbone(*[torch.cat(a) for a in args])[-1].chunk(len(views)))
        return [backbone(*a)[-1] for a in zip(*args)]

    def _global(self, feat: torch.Tensor, neck: nn.Module) -> torch.Tensor:
        return neck([feat])[0]

    def view_masks(self, data_samples: Sequence[DataSample], device=None) -> List[torch.Tensor]:
        """The (B, h, w) token mask of each view (1 = masked) from the data samples."""
        masks = stack_field(data_samples, 'mask', device)
        if masks.dim() != 4 or masks.shape[1] != 2:
            raise ValueError(f'the data samples\' mask must be (2, h, w), one per view; got '
                             f'{tuple(masks.shape[1:])}')
        return [masks[:, v] for v in range(2)]

    def _check_views(self, inputs) -> List[torch.Tensor]:
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError('CMID expects two views per image (inputs = [view_a, view_b]); '
                             'use CMIDMultiView(num_views=[1, 1], ...) in the train pipeline')
        return list(inputs)

    def reconstruct(self, inputs: List[torch.Tensor], data_samples: Sequence[DataSample],
                    return_feats: bool = False):
        """The student's masked forward and MIM reconstruction of each view.

        Each view is mean-filled where masked, passed through the student backbone with its
        mask (mask token after the stem; one joint pass with ``joint_views``) and decoded by
        ``mim_head``: exactly what :meth:`loss` computes. Runs in the model's current mode
        and with gradients unless the caller disables them.

        Args:
            inputs: the two normalised views, each (B, N, H, W).
            data_samples: per image, ``mask`` (2, h, w) token masks, 1 = masked.
            return_feats: also return the last-stage feature maps of the masked views.

        Returns:
            Two reconstructions (B, N, H, W) in the normalised space; with ``return_feats``
            ``(recons, feats)``, ``feats`` the two (B, C, h', w') maps.
        """
        views = self._check_views(inputs)
        recons, feats = self._masked_forward(views, self.view_masks(data_samples,
                                                                    views[0].device))
        return (recons, feats) if return_feats else recons

    def _masked_forward(self, views: List[torch.Tensor], masks: List[torch.Tensor]):
        """Reconstructions and last feature maps of the mean-filled, masked views."""
        masked = [mean_fill(view, upsample_mask(mask, view.shape[-2:]))
                  for view, mask in zip(views, masks)]
        feats = self._per_view(self.backbone, masked, masks)
        return [self.mim_head(feat) for feat in feats], feats

    def cell_centres(self, data_samples: Sequence[DataSample], grid_hw: Tuple[int, int],
                     device=None) -> torch.Tensor:
        """Cell centres (B, 2, h*w, 2) of both views in source pixels (method.md §2.6)."""
        boxes = stack_field(data_samples, 'crop_bbox', device).float()
        flips = stack_field(data_samples, 'flip', device).bool()
        src = stack_field(data_samples, 'crop_src_shape', device).float() \
            if self.reference_offsets else None
        return view_cell_centers(boxes, flips, tuple(grid_hw), src, self.reference_offsets)

    def match(self, data_samples: Sequence[DataSample], grid_hw: Tuple[int, int],
              device=None) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """The position-matched cells of ``L_local`` for an (h, w) = ``grid_hw`` map.

        Returns:
            ``[(idx_a, idx_b), (idx_b, idx_a)]``: for the directions student A -> teacher B and
            student B -> teacher A, the (B, num_matches) student-cell and teacher-cell indices
            (row-major over the map), as :func:`~cmid_mm.models.utils.match_views`.
        """
        return match_views(self.cell_centres(data_samples, grid_hw, device), self.num_matches)

    def loss(self, inputs: List[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """One CMID step.

        Args:
            inputs: two normalised views, each (B, N, H, W).
            data_samples: per image, ``mask`` (2, H/4, W/4) (1 = masked), ``crop_bbox``
                (2, 4) [top, left, height, width] and ``crop_src_shape`` (2, 2) in source
                pixels, ``flip`` (2,).

        Returns:
            ``loss_rec``, ``loss_global``, ``loss_local`` (already weighted).
        """
        views = self._check_views(inputs)
        view_masks = self.view_masks(data_samples, views[0].device)

        # Teacher: EMA update with the current student, then plain forward of both views.
        # (mmpretrain convention, as in BYOL / MoCo: updating before this step's optimizer
        # step equals updating after the previous one.)
        with torch.no_grad():
            self.teacher.update_parameters(self._student_modules())
            teacher = self.teacher.module
            t_feats = self._per_view(teacher.backbone, views)
            t_keys = [self._global(f, teacher.global_neck) for f in t_feats]

        # Student: both views masked (mean fill in pixels + mask token after the stem).
        recons, s_feats = self._masked_forward(views, view_masks)  # = reconstruct()
        loss_rec = sum(
            sum(self.mim_head.loss_by_recon(recon, view, mask).values())
            for recon, view, mask in zip(recons, views, view_masks)) / 2

        # Global: student(masked X) vs teacher(other view), queue of teacher keys. Both
        # directions in one call: the mean over 2B rows is the mean of the two directions.
        queries = [self._global(f, self.global_neck) for f in s_feats]
        loss_global = self.global_head.loss(
            torch.cat(queries), torch.cat([t_keys[1], t_keys[0]]))

        # Local: DINO on position-matched cells of the last feature maps.
        grid_hw = tuple(s_feats[0].shape[-2:])
        loss_local, t_outs = 0., []
        for (s, t), (idx_s, idx_t) in zip(DIRECTIONS,
                                          self.match(data_samples, grid_hw, views[0].device)):
            s_out = self.local_neck(gather_cells(s_feats[s], idx_s))  # float32 (autocast too)
            with torch.no_grad():
                t_out = teacher.local_neck(gather_cells(t_feats[t], idx_t))
            loss_local = loss_local + self.local_head.loss(s_out, t_out) / 2
            t_outs.append(t_out)

        losses = dict(loss_rec=loss_rec, loss_global=loss_global, loss_local=loss_local)
        # Before the in-place state updates: a non-finite step changes neither queue nor centre.
        self._check_finite(losses)
        self.global_head.enqueue(t_keys[1])
        self.global_head.enqueue(t_keys[0])
        # Centre: once per step, from the teacher outputs of both directions.
        self.local_head.update_center(torch.cat(t_outs, dim=-1))
        return {k: self.loss_weights[k] * v for k, v in losses.items()}

    @staticmethod
    def _check_finite(losses: Dict[str, torch.Tensor]) -> None:
        """Stop on a non-finite loss term, naming it and the iteration.

        Raising here (before the backward pass and before any checkpoint of this iteration is
        written) leaves the weights untouched; ``SafeRunner`` adds which checkpoint holds the
        weights that gave this loss and which one was written before them.
        """
        bad = {k: v.item() for k, v in losses.items() if not torch.isfinite(v).all()}
        if bad:
            it = MessageHub.get_current_instance().get_info('iter')
            raise FloatingPointError(
                f'non-finite CMID loss at iteration {it}: {bad}. The student weights, the '
                'queue and the centre were not updated by this iteration. Either the weights '
                'have diverged (resume from a checkpoint written before they did, with a lower '
                'lr) or the input images of this batch are to blame.')
