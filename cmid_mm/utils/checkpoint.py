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


def warn_if_safe_loading_is_off() -> None:
    """Warn when ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` turns torch's safe loading off process-wide
    (every ``torch.load`` without an explicit ``weights_only`` would then run pickled code)."""
    import os
    import warnings
    value = os.environ.get('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '')
    if value.strip().lower() in ('1', 'y', 'yes', 'true', 'on'):
        warnings.warn(
            f'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD={value} turns torch\'s safe checkpoint loading '
            'off: mmengine would then unpickle (and run) whatever a checkpoint contains. '
            'cmid_mm does not need it (mmengine Runner checkpoints load safely once cmid_mm is '
            'imported); unset it. See SECURITY.md.', stacklevel=2)


def register_safe_globals() -> None:
    """Allow-list :func:`safe_globals` for ``torch.load(weights_only=True)`` (idempotent)."""
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(safe_globals())


def safe_load_url(url: str, model_dir=None, map_location=None, progress: bool = True,
                  check_hash: bool = False, file_name=None):
    """``torch.hub.load_state_dict_from_url`` with safe loading (``weights_only=True``).

    torch's function unpickles with ``weights_only=False`` by default, both the download and
    the copy it caches in ``$TORCH_HOME/hub/checkpoints``; mmengine uses it for every
    ``http(s)://``, ``torchvision://``, ``open-mmlab://`` and ``mmcls://`` checkpoint
    (``init_cfg`` Pretrained, ``load_from``, ``--resume URL``). This version reads data only;
    a file that needs anything else is refused with its URL and cached path.
    """
    import os
    from urllib.parse import urlparse
    try:
        return torch.hub.load_state_dict_from_url(
            url, model_dir=model_dir, map_location=map_location, progress=progress,
            check_hash=check_hash, file_name=file_name, weights_only=True)
    except pickle.UnpicklingError as e:
        cache = os.path.join(model_dir or os.path.join(torch.hub.get_dir(), 'checkpoints'),
                             file_name or os.path.basename(urlparse(url).path))
        raise pickle.UnpicklingError(
            f'refusing to load {url} (downloaded to {cache}): it is not a data-only checkpoint, '
            'and cmid_mm never unpickles code from a checkpoint. If you trust the file, '
            'convert it yourself into a tensors-only file and load that path instead. '
            f'torch said: {e}') from None


def install_safe_url_loading() -> None:
    """Route mmengine's URL checkpoint loading through :func:`safe_load_url` (idempotent).

    mmengine's ``load_from_http`` (and the ``torchvision://``, ``open-mmlab://`` and ``mmcls://``
    schemes that call it) look up ``mmengine.runner.checkpoint.load_url`` at call time.
    """
    import mmengine.runner.checkpoint as mm_checkpoint
    mm_checkpoint.load_url = safe_load_url
