"""A folder of unlabelled remote-sensing images, with clear errors for a wrong folder."""
import os.path as osp
from collections import Counter
from typing import Sequence

import numpy as np

from mmengine.fileio import get_file_backend
from mmpretrain.datasets import CustomDataset
from mmpretrain.registry import DATASETS

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff')


@DATASETS.register_module()
class RSImageFolder(CustomDataset):
    """Every image file under a folder (recursively), for self-supervised pretraining.

    mmpretrain's ``CustomDataset`` with ``with_label=False`` (the default here) and ``.tiff``
    added to its extensions. A missing folder, or one without a file of the searched
    extensions, is an error that names the folder, the extensions, what the folder does hold and
    what to set. A sample the pipeline skips (``LoadRSImageFromFile(on_error='skip')``) is
    replaced by a random other one, as in mmengine, but without replacement cycles under
    ``PerSampleSeed`` (see :meth:`__getitem__`); when all replacements fail, the error says
    why instead of mmengine's generic one.

    Args:
        data_root (str): the folder (or the root that ``data_prefix`` is relative to).
        data_prefix (str | dict): sub-folder of ``data_root`` holding the images.
        extensions (Sequence[str]): file name endings to use (case-insensitive). N-band
            ``.npy`` arrays are read by ``LoadRSImageFromFile`` but not listed by default: add
            ``'.npy'`` to use them.
        with_label (bool): ``False`` (unlabelled images). ``True`` works as in
            ``CustomDataset`` (one sub-folder per class).
        **kwargs: passed to ``CustomDataset`` (``ann_file``, ``pipeline``, ``indices``,
            ``max_refetch``, ...).
    """

    def __init__(self,
                 data_root: str = '',
                 data_prefix='',
                 extensions: Sequence[str] = IMAGE_EXTENSIONS,
                 with_label: bool = False,
                 **kwargs) -> None:
        super().__init__(data_root=data_root, data_prefix=data_prefix, extensions=extensions,
                         with_label=with_label, **kwargs)

    def _find_samples(self):
        folder = self.img_prefix
        backend = get_file_backend(folder, enable_singleton=True)
        exts = ', '.join(sorted(self.extensions))
        if not backend.isdir(folder):
            raise FileNotFoundError(
                f'RSImageFolder: the image folder {osp.abspath(folder)!r} does not exist '
                f'(data_root={self.data_root!r}, cwd {osp.abspath(".")}). Set '
                'train_dataloader.dataset.data_root to the folder that holds your images, e.g. '
                '--cfg-options '
                'train_dataloader.dataset.data_root=/data/MillionAID/train')
        try:
            return super()._find_samples()
        except RuntimeError as e:
            if not str(e).startswith('Found 0 files'):
                raise
            others = Counter(
                osp.splitext(f)[1].lower() or '(no extension)'
                for f in backend.list_dir_or_file(folder, list_dir=False, recursive=True))
            held = ('it holds no files at all' if not others else
                    'it holds ' + ', '.join(f'{n} {ext}' for ext, n in others.most_common(5)) +
                    (' (and more)' if len(others) > 5 else '') + ' files')
            raise FileNotFoundError(
                f'RSImageFolder: no image file under {osp.abspath(folder)!r} (searched '
                f'recursively for {exts}); {held}. Point data_root at the folder with the '
                'images, or add their extension to extensions=(...) if LoadRSImageFromFile can '
                'read them (OpenCV formats, multi-page TIFF, .npy).') from None

    def __getitem__(self, idx: int) -> dict:
        """The sample ``idx``; if the pipeline skips it (returns None), a random other one.

        As mmengine's ``BaseDataset`` (up to ``max_refetch`` replacements), except that the
        replacement index also depends on the attempt number. mmengine draws it from numpy's
        global RNG, which ``PerSampleSeed`` has just reseeded from the skipped sample: the
        replacement of a bad sample is then always the same index, and a bad sample whose
        replacement is itself (or a cycle of bad samples) is retried until ``max_refetch``
        runs out, although good samples exist.
        """
        if not self._fully_initialized:
            self.full_init()
        if self.test_mode:
            return super().__getitem__(idx)
        for attempt in range(self.max_refetch + 1):
            data = self.prepare_data(idx)
            if data is not None:
                return data
            # still a function of the global RNG (reproducible under PerSampleSeed) ...
            draw = int(np.random.randint(0, 2**31 - 1))
            # ... mixed with the attempt, so that a chain of replacements cannot cycle
            idx = int(np.random.default_rng([draw, attempt]).integers(len(self)))
        raise RuntimeError(
            f'RSImageFolder ({osp.abspath(self.img_prefix)!r}): a sample and its '
            f'{self.max_refetch} random replacements were all skipped by the pipeline. Most or '
            'all files are bad: see the "skipped image" warnings for the files and reasons, or '
            "set on_error='raise' in LoadRSImageFromFile to stop at the first one.")
