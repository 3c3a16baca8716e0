"""CMID: Contrastive Mask Image Distillation (Muhtar et al., IEEE TGRS 2023).

A student (backbone with a mask token + MIM decoder + global projector + local head) and an EMA
teacher (backbone + global projector + local head) see two crops A and B of one image. The
student sees both views masked, the teacher both views whole. Three losses:

* ``loss_rec``: the student reconstructs each view's pixels from its masked version;
* ``loss_global``: MoCo-v2 InfoNCE, student(masked A) vs teacher(B) (and B vs A) with a queue;
* ``loss_local``: DINO cross-entropy between position-matched cells of the last feature maps,
  student(masked A) vs teacher(B) (and B vs A).
"""
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.logging import MessageHub
from mmpretrain.models import BaseSelfSupervisor, CosineEMA
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import nn

from cmid_mm.models.utils.mean_fill import mean_fill, upsample_mask
from cmid_mm.models.utils.position_matching import cell_centers, gather_cells, match_cells


def _stack_field(data_samples: Sequence[DataSample], key: str, device) -> torch.Tensor:
    """Stack a per-sample field with a leading view axis into (B, V, ...)."""
    values = [ds.get(key) for ds in data_samples]
    if any(v is None for v in values):
        raise KeyError(f'data sample has no {key!r}: the train pipeline must end with '
                       "CMIDMultiView(...) and PackInputs(algorithm_keys=['crop_bbox', "
                       "'crop_src_shape', 'flip'])")
    return torch.stack([torch.as_tensor(np.asarray(v)) for v in values]).to(device)


@MODELS.register_module()
class CMID(BaseSelfSupervisor):
    """CMID self-supervised algorithm.

    Args:
        backbone (dict): a masked backbone whose ``forward(x, mask)`` takes a (B, H/4, W/4)
            mask, e.g. ``CMIDResNet`` / ``CMIDSwinTransformer`` / ``CMIDVisionTransformer``.
            Its last output is the feature map all losses use (stride 32, or 16 for ViT/16).
        mim_head (dict): pixel decoder + reconstruction losses (``CMIDMIMHead``).
        global_neck (dict): global projector, e.g. ``MoCoV2Neck`` (avgpool-fc-relu-fc).
        global_head (dict): InfoNCE with a queue (``QueueContrastiveHead``).
        local_neck (dict): DINO head on cell features (``CMIDLocalHead``).
        local_loss (dict): DINO loss with centre and teacher temperature (``DINOLocalLoss``).
        base_momentum (float): EMA update weight at the start (0.004 = decay 0.996); cosine
            to ``end_momentum`` (0.0 = decay 1.0) over all iterations.
        num_matches (int): student cells kept by position matching (20 of 7x7 in the paper).
        reference_offsets (bool): reproduce the reference code's crop-offset bug in position
            matching (offsets as fractions, method.md §2.6) to compare with its released models.
        loss_weights (dict): weights of ``loss_rec``, ``loss_global``, ``loss_local`` (1 each).
        joint_views (bool): run both views through the backbone in one pass (student and
            teacher), instead of one pass per view as the reference does. Same losses up to
            float rounding for backbones without batch statistics (Swin, ViT: LayerNorm);
            with BatchNorm (ResNet) each BN layer then normalises over both views together
            (2B images) and updates its running statistics once per step instead of twice.
            Off by default: on 2 CPU cores at batch 8 it was 3 % faster for Swin-T and 9 %
            slower for ResNet-50 (docs/benchmarks.md); measure on your hardware.
    """

    def __init__(self,
                 backbone: dict,
                 mim_head: dict,
                 global_neck: dict,
                 global_head: dict,
                 local_neck: dict,
                 local_loss: dict,
                 base_momentum: float = 0.004,
                 end_momentum: float = 0.0,
                 num_matches: int = 20,
                 reference_offsets: bool = False,
                 loss_weights: Optional[dict] = None,
                 joint_views: bool = False,
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
        self.local_loss = MODELS.build(local_loss)
        # The teacher mirrors backbone + global projector + local head (not the MIM decoder).
        # Its first update (step 0) copies the student exactly.
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
        args = [views] if masks is None else [views, masks]
        if self.joint_views:
            return list(backbone(*[torch.cat(a) for a in args])[-1].chunk(len(views)))
        return [backbone(*a)[-1] for a in zip(*args)]

    def _global(self, feat: torch.Tensor, neck: nn.Module) -> torch.Tensor:
        return neck([feat])[0]

    def _cells(self, data_samples: Sequence[DataSample], grid_hw: tuple, device):
        """Cell centres (B, 2, h*w, 2) of both views in source pixels (method.md §2.6)."""
        boxes = _stack_field(data_samples, 'crop_bbox', device).float()
        flips = _stack_field(data_samples, 'flip', device).bool()
        src = _stack_field(data_samples, 'crop_src_shape', device).float() \
            if self.reference_offsets else None
        return torch.stack([
            cell_centers(boxes[:, v], flips[:, v], grid_hw,
                         src[:, v] if src is not None else None, self.reference_offsets)
            for v in range(2)
        ], dim=1)

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
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError('CMID expects two views per image (inputs = [view_a, view_b]); '
                             'use CMIDMultiView(num_views=[1, 1], ...) in the train pipeline')
        views = list(inputs)
        masks = torch.stack([ds.mask for ds in data_samples]).to(views[0].device)  # (B,2,h,w)

        # Teacher: EMA update with the current student, then plain forward of both views.
        # (mmpretrain convention, as in BYOL / MoCo: updating before this step's optimizer
        # step equals updating after the previous one.)
        with torch.no_grad():
            self.teacher.update_parameters(self._student_modules())
            teacher = self.teacher.module
            t_feats = self._per_view(teacher.backbone, views)
            t_keys = [self._global(f, teacher.global_neck) for f in t_feats]

        # Student: both views masked (mean fill in pixels + mask token after the stem).
        view_masks = [masks[:, v] for v in range(2)]
        masked = [mean_fill(view, upsample_mask(mask, view.shape[-2:]))
                  for view, mask in zip(views, view_masks)]
        s_feats = self._per_view(self.backbone, masked, view_masks)
        loss_rec = sum(
            sum(self.mim_head.loss(feat, view, mask).values())
            for feat, view, mask in zip(s_feats, views, view_masks)) / 2

        # Global: student(masked X) vs teacher(other view), queue of teacher keys. Both
        # directions in one call: the mean over 2B rows is the mean of the two directions.
        queries = [self._global(f, self.global_neck) for f in s_feats]
        loss_global = self.global_head.loss(
            torch.cat(queries), torch.cat([t_keys[1], t_keys[0]]))

        # Local: DINO on position-matched cells of the last feature maps.
        grid_hw = tuple(s_feats[0].shape[-2:])
        centres = self._cells(data_samples, grid_hw, views[0].device)
        loss_local, t_outs = 0., []
        for s, t in ((0, 1), (1, 0)):
            idx_s, idx_t = match_cells(centres[:, s], centres[:, t], self.num_matches)
            s_out = self.local_neck(gather_cells(s_feats[s], idx_s))
            with torch.no_grad():
                t_out = teacher.local_neck(gather_cells(t_feats[t], idx_t))
            loss_local = loss_local + self.local_loss(s_out, t_out) / 2
            t_outs.append(t_out)

        losses = dict(loss_rec=loss_rec, loss_global=loss_global, loss_local=loss_local)
        # Before the in-place state updates: a non-finite step changes neither queue nor centre.
        self._check_finite(losses)
        self.global_head.enqueue(t_keys[1])
        self.global_head.enqueue(t_keys[0])
        # Centre: once per step, from the teacher outputs of both directions.
        self.local_loss.update_center(torch.cat(t_outs, dim=-1))
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
