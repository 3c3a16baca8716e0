"""Load mmengine Runner checkpoints under torch's safe (``weights_only``) unpickler.

torch >= 2.6 loads with ``weights_only=True`` by default; mmengine 0.10.7 calls ``torch.load``
without that argument, so every checkpoint written by its Runner (which stores the message
hub's ``HistoryBuffer`` objects and numpy scalars/arrays in ``meta``) fails to load for
``resume``, ``load_from`` and ``init_cfg=dict(type='Pretrained')``. Instead of turning safety
off, :func:`register_safe_globals` allow-lists exactly the classes and functions such
checkpoints contain; everything else is still refused by torch.
"""
import pickle

import numpy as np
import torch
from mmengine.logging import HistoryBuffer


def _numpy_globals() -> list:
    """numpy objects that pickled arrays, scalars and dtypes refer to."""
    try:  # numpy >= 1.25 spells it numpy.dtypes; pickles still name numpy.core.multiarray
        from numpy import dtypes as np_dtypes
        dtype_classes = [getattr(np_dtypes, n) for n in dir(np_dtypes) if n.endswith('DType')]
    except ImportError:  # pragma: no cover - older numpy
        dtype_classes = []
    multiarray = np.core.multiarray
    return [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype, *dtype_classes]


def _history_buffer_getattr(obj, name: str):
    """Stand-in for ``builtins.getattr`` during safe loading.

    Pickle stores ``HistoryBuffer``'s statistics methods (its ``min``, ``max``, ``mean``,
    ``current`` and registered ones) as ``getattr(HistoryBuffer, 'min')``. Allow-listing the
    real ``getattr`` would let a malicious file reach any attribute of any allowed object
    (and from there, anything); this version resolves exactly those methods and refuses the
    rest.
    """
    allowed = {'min', 'max', 'mean', 'current', *HistoryBuffer._statistics_methods}
    if obj is HistoryBuffer and isinstance(name, str) and name in allowed:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'checkpoint asks for getattr({obj!r}, {name!r}); cmid_mm only allows the statistics '
        'methods of mmengine.logging.HistoryBuffer during safe loading.')


def safe_globals() -> list:
    """The allow-list: what mmengine Runner checkpoints contain besides tensors and builtins.

    Items are objects, or ``(object, name-in-the-pickle)`` pairs as torch accepts them.
    """
    return [HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr'), *_numpy_globals()]


def safe_global_names() -> set:
    """The names (``module.qualname``) the allow-list lets a pickle refer to."""
    return {g[1] if isinstance(g, tuple) else f'{g.__module__}.{g.__qualname__}'
            for g in safe_globals()}


def register_safe_globals() -> None:
    """Allow-list :func:`safe_globals` for ``torch.load(weights_only=True)`` (idempotent)."""
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(safe_globals())
