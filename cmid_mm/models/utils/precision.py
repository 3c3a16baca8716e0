"""Parts of CMID that compute in float32 (at least) also under autocast."""
import torch


def at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32, or float64 if it is float64 (a bfloat16 / float16 tensor from an
    autocast region is cast up)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))
