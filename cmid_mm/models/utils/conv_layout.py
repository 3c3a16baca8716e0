"""Linear layers whose checkpoints keep the layout of the 1x1 convolutions they replace.

CMID's MIM decoder and local neck were written (as in the reference code) with 1x1
``Conv2d`` / ``Conv1d`` layers, and every checkpoint since stores their weights as
``(out, in, 1, 1)`` / ``(out, in, 1)`` tensors. The modules are ``nn.Linear`` (what actually
runs: one matrix product over the cells, faster than oneDNN's 1x1 convolutions on CPU); this
helper makes their state dict read and write the convolution layout, so old checkpoints load
unchanged and new ones have the same keys and shapes (exporters, the reference converter and
downstream loading see no difference).
"""
from functools import partial

import torch
from torch import nn

# Keys of a Linear (plain or weight-normalised) that carry a (out, in) / (out, 1) matrix.
_MATRIX_KEYS = ('weight', 'parametrizations.weight.original0',
                'parametrizations.weight.original1')


def keep_conv_layout(linear: nn.Module, kernel_dims: int) -> nn.Module:
    """Make ``linear``'s state dict use the shapes of a 1x1 convolution.

    Saving appends ``kernel_dims`` singleton dimensions to its weight matrices
    (``kernel_dims=1``: Conv1d layout ``(out, in, 1)``, ``2``: Conv2d ``(out, in, 1, 1)``);
    loading accepts that layout and the plain Linear one. The saved tensors are views of the
    parameters (no copy).

    Args:
        linear: an ``nn.Linear``, optionally weight-normalised by
            ``torch.nn.utils.parametrizations.weight_norm``.
        kernel_dims: spatial dimensions of the convolution layout (1 or 2).

    Returns:
        ``linear`` (hooks registered).
    """
    if kernel_dims not in (1, 2):
        raise ValueError(f'kernel_dims must be 1 (Conv1d) or 2 (Conv2d); got {kernel_dims}')
    ones = (1, ) * kernel_dims
    linear.register_state_dict_post_hook(partial(_to_conv, ones=ones))
    linear.register_load_state_dict_pre_hook(partial(_from_conv, ones=ones))
    return linear


# Module-level functions (bound with functools.partial) so that models stay picklable and
# deep copies (the EMA teacher) carry working hooks.
def _to_conv(module, state_dict, prefix, local_metadata, ones):
    for key in _MATRIX_KEYS:
        value = state_dict.get(prefix + key)
        if value is not None and value.dim() == 2:
            state_dict[prefix + key] = value.reshape(*value.shape, *ones)


def _from_conv(module, state_dict, prefix, local_metadata, strict, missing_keys,
               unexpected_keys, error_msgs, ones):
    for key in _MATRIX_KEYS:
        value = state_dict.get(prefix + key)
        if isinstance(value, torch.Tensor) and value.dim() == 2 + len(ones) \
                and tuple(value.shape[2:]) == ones:
            state_dict[prefix + key] = value.reshape(value.shape[:2])
