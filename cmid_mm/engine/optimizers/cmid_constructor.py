"""Optimizer constructor that leaves CMID's EMA teacher out of the optimizer."""
from typing import List, Optional

from mmengine.optim import DefaultOptimWrapperConstructor
from mmpretrain.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class CMIDOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """``DefaultOptimWrapperConstructor`` (all its ``paramwise_cfg`` options) that skips the
    top-level ``teacher`` module.

    The teacher is updated by EMA only and has no gradients. The default constructor would
    add it anyway and log one warning per teacher parameter (hundreds for Swin-B).
    """

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   is_dcn_module: Optional[int] = None) -> None:
        if prefix or not hasattr(module, 'teacher'):
            return super().add_params(params, module, prefix, is_dcn_module)
        if next(module.parameters(recurse=False), None) is not None:
            raise NotImplementedError('CMIDOptimWrapperConstructor expects all parameters in '
                                      'submodules of the model')
        for name, child in module.named_children():
            if name != 'teacher':
                super().add_params(params, child, name, is_dcn_module)
