"""The bare model inside DDP / mmengine model wrappers (one helper for the whole package)."""
from mmengine.model import is_model_wrapper
from torch import nn


def unwrap_model(model: nn.Module) -> nn.Module:
    """``model.module`` for a model wrapper (``MMDistributedDataParallel``, DDP, ...), else
    ``model`` itself."""
    return model.module if is_model_wrapper(model) else model
