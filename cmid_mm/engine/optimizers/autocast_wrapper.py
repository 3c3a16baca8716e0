"""Mixed precision on a CPU: bfloat16 autocast around the forward pass, no loss scaling."""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from torch import nn

from cmid_mm.utils.machine import cpu_isa_flags


def cpu_bf16_supported() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), so that bfloat16
    autocast is faster than float32; without them oneDNN emulates bfloat16 (slower)."""
    cpu = getattr(torch, 'cpu', None)
    for name in ('_is_avx512_bf16_supported', '_is_amx_tile_supported'):
        check = getattr(cpu, name, None)
        if check is not None and check():
            return True
    # older torch: the kernel's CPU flags
    return bool({'avx512_bf16', 'amx_bf16'} & set(cpu_isa_flags()))


@OPTIM_WRAPPERS.register_module()
class CPUAutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose ``optim_context`` (the forward pass of ``train_step``) runs under
    ``torch.autocast('cpu', dtype)``; backward and the optimizer step stay outside.

    bfloat16 has float32's exponent range, so no loss scaling is needed (unlike float16 on a
    GPU, ``AmpOptimWrapper``). Weights, gradients and optimizer state stay float32; only the
    ops autocast lists (convolutions, matrix products) run in bfloat16. ``tools/train.py
    --amp`` selects this wrapper on a CPU-only machine whose CPU has native bfloat16
    (:func:`cpu_bf16_supported`).

    Args:
        dtype (str or torch.dtype): ``'bfloat16'``, the only type offered (float16 would
            need loss scaling, which this wrapper does not do).
        **kwargs: passed to ``OptimWrapper``.
    """

    def __init__(self, dtype='bfloat16', **kwargs) -> None:
        super().__init__(**kwargs)
        if dtype not in ('bfloat16', torch.bfloat16):
            raise ValueError(f"CPUAutocastOptimWrapper: dtype must be 'bfloat16' (float16 "
                             f"needs loss scaling: AmpOptimWrapper on a GPU); got {dtype!r}")
        self.cast_dtype = torch.bfloat16

    @contextmanager
    def optim_context(self, model: nn.Module):
        with super().optim_context(model), torch.autocast('cpu', dtype=self.cast_dtype):
            yield
