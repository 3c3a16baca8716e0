"""Make each sample's augmentation a pure function of (run seed, epoch, sample).

Random transforms draw from the global RNGs of the process that runs the pipeline: the main
process with ``num_workers=0``, otherwise a data-loader worker seeded once when it starts. The
draws a sample gets therefore depend on everything drawn before it in that process, i.e. on the
number of workers, on which worker got which batch, and on where the process was (re)started:
after a resume the augmentations differ from an uninterrupted run. :class:`PerSampleSeed`, put
first in the train pipeline, reseeds the pipeline's RNGs for every sample from
``(seed, epoch, sample index, file name)``, so the same sample in the same epoch is augmented
identically with any number of workers, persistent or not, and after any restart.

:class:`~cmid_mm.engine.hooks.ExactResumeHook` tells it the run seed and the epoch before each
epoch. The value lives in shared memory, so persistent workers (forked or spawned once, before
the first epoch) see every new epoch too.
"""
import hashlib
import logging
import os.path as osp
import random
import warnings
import zlib

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.logging import print_log
from mmpretrain.registry import TRANSFORMS

UNSET = -1
SEED_MASK = (1 << 64) - 1
DATA_STREAM = 0x5EED_DA7A  # separates these seeds from ExactResumeHook's model-side seeds


def derive_seed(*words: int) -> np.ndarray:
    """A 128-bit seed (4 x uint32) that is a hash (BLAKE2b) of integer ``words``."""
    data = b''.join((int(w) & SEED_MASK).to_bytes(8, 'little') for w in words)
    return np.frombuffer(hashlib.blake2b(data, digest_size=16).digest(), dtype='<u4').copy()


def seed_global_rngs(state: np.ndarray, seed_torch: bool = True) -> None:
    """Seed numpy's and ``random``'s global RNGs (and torch's CPU and CUDA ones) from
    :func:`derive_seed`'s output.

    ``torch.manual_seed`` records a stack trace for CUDA's lazy seeding on every call (~1 ms);
    when CUDA is absent or already initialised the generators are seeded directly instead.
    """
    np.random.seed(state)
    random.seed(int.from_bytes(state.tobytes(), 'little'))
    if not seed_torch:
        return
    seed = (int(state[0]) << 32 | int(state[1])) & ((1 << 63) - 1)
    if torch.cuda.is_available() and not torch.cuda.is_initialized():
        torch.manual_seed(seed)  # queues the CUDA seeding for when CUDA starts
        return
    torch.default_generator.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


@TRANSFORMS.register_module()
class PerSampleSeed(BaseTransform):
    """Seed numpy's and ``random``'s global RNGs (and optionally torch's) for one sample.

    Put it first in the train pipeline (before any random transform). The seed is derived
    (a BLAKE2b hash, 128 bits) from the run seed and epoch set by
    :meth:`set_epoch`, the sample's ``sample_idx`` (its index in the dataset, which mmengine's
    ``BaseDataset`` adds) and the CRC-32 of the basename of ``img_path`` if present (so two
    concatenated datasets do not share seeds; the basename keeps them valid when the data
    folder moves).

    It cannot work on its own: the epoch is known only to the training loop, and a fixed
    stand-in would give every epoch the same augmentations. Until :meth:`set_epoch` has been
    called (no ``ExactResumeHook`` in ``custom_hooks``, or the pipeline used outside a training
    run) it therefore does nothing, the pipeline draws from the global RNGs as usual, and
    ``when_unarmed`` decides how loudly: by default one warning (per transform and process)
    naming what to add
    (an error would break the legitimate uses outside training: dataset browsing, the
    visualisation tools, which seed each image themselves and set ``'ignore'``).

    **Required Keys:** ``sample_idx`` (once armed). **Optional Keys:** ``img_path``.
    Nothing is modified.

    Args:
        seed_torch (bool): also seed torch's global RNG. Needed only if a transform of the
            pipeline draws from torch (the mmcv / mmpretrain / cmid_mm transforms use numpy).
            With ``num_workers=0`` this resets the main process's torch RNG for every sample;
            ``ExactResumeHook`` reseeds it before each iteration anyway.
        when_unarmed (str): what a call before :meth:`set_epoch` does besides passing the
            sample through: ``'warn'`` (once per process), ``'error'`` (raise) or
            ``'ignore'``.
    """

    WHEN_UNARMED = ('warn', 'error', 'ignore')

    def __init__(self, seed_torch: bool = False, when_unarmed: str = 'warn') -> None:
        if when_unarmed not in self.WHEN_UNARMED:
            raise ValueError(f'PerSampleSeed: when_unarmed must be one of {self.WHEN_UNARMED}; '
                             f'got {when_unarmed!r}')
        self.seed_torch = seed_torch
        self.when_unarmed = when_unarmed
        self._warned = False
        # [seed, epoch] in shared memory: data-loader workers read what the hook writes.
        self._seed_epoch = torch.full((2, ), UNSET, dtype=torch.int64).share_memory_()

    def set_epoch(self, seed: int, epoch: int) -> None:
        """Arm the transform for ``epoch`` (>= 0) of a run seeded with ``seed``."""
        if int(epoch) < 0:
            raise ValueError(f'PerSampleSeed.set_epoch: epoch must be >= 0; got {epoch}')
        # An int64 slot holds the low 63 bits; the seed only needs to be stable.
        self._seed_epoch[0] = int(seed) & ((1 << 63) - 1)
        self._seed_epoch[1] = int(epoch)

    @property
    def epoch(self) -> int:
        """The epoch the transform is armed for, or -1 if not armed."""
        return self._seed_epoch.tolist()[1]

    def sample_seed(self, sample_idx: int, img_path=None) -> np.ndarray:
        """The 128-bit seed (4 x uint32) of one sample in the armed epoch."""
        seed, epoch = self._seed_epoch.tolist()
        words = [DATA_STREAM, seed, epoch, int(sample_idx)]
        if img_path:
            words.append(zlib.crc32(osp.basename(str(img_path)).encode()))
        return derive_seed(*words)

    def transform(self, results: dict) -> dict:
        """Reseed the RNGs for ``results``; see the class docstring."""
        if self.epoch < 0:
            self._unarmed()
            return results
        if results.get('sample_idx') is None:
            raise KeyError(
                "PerSampleSeed needs 'sample_idx' in the pipeline input (mmengine's BaseDataset "
                'adds it in get_data_info). Use a dataset derived from mmengine.dataset.'
                "BaseDataset, or add 'sample_idx' to the data info of "
                f"{results.get('img_path', 'this sample')!r}.")
        if int(results['sample_idx']) < 0:
            raise ValueError(f"PerSampleSeed: sample_idx must be >= 0; got "
                             f"{results['sample_idx']} for {results.get('img_path')!r}")
        seed_global_rngs(self.sample_seed(results['sample_idx'], results.get('img_path')),
                         self.seed_torch)
        return results

    def _unarmed(self) -> None:
        if self.when_unarmed == 'ignore' or (self.when_unarmed == 'warn' and self._warned):
            return
        msg = ('PerSampleSeed is not armed, so it does nothing: augmentations come from the '
               'global RNG streams (they differ after a resume and with the number of '
               "workers). Add dict(type='ExactResumeHook') to custom_hooks, which arms it "
               'every epoch; outside a training run, call set_epoch(seed, epoch) or build it '
               "with when_unarmed='ignore'; or remove dict(type='PerSampleSeed') from the "
               'pipeline.')
        if self.when_unarmed == 'error':
            raise RuntimeError(msg)
        self._warned = True
        warnings.warn(msg, UserWarning, stacklevel=2)
        print_log(msg, logger='current', level=logging.WARNING)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(seed_torch={self.seed_torch}, '
                f'when_unarmed={self.when_unarmed!r})')
