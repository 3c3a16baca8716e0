"""A folder of unlabelled remote-sensing images, with clear errors for a wrong folder."""
import errno
import logging
import os
import os.path as osp
import stat
from collections import Counter
from typing import List, Sequence

import numpy as np

from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.logging import print_log
from mmpretrain.datasets import CustomDataset
from mmpretrain.registry import DATASETS

from .transforms.loading import find_image_loaders

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff')


@DATASETS.register_module()
class RSImageFolder(CustomDataset):
    """Every image file under a folder (recursively), for self-supervised pretraining.

    mmpretrain's ``CustomDataset`` with ``with_label=False`` (the default here) and ``.tiff``
    added to its extensions. A missing folder, or one without a file of the searched
    extensions, is an error that names the folder, the extensions, what the folder does hold and
    what to set.

    Symbolic links (local folders) are followed, as by mmengine's listing, but not silently:

    * a link that points nowhere (dangling: its target was moved, deleted or is on storage
      that is not mounted) and would have been listed (an image extension, or no extension:
      perhaps a folder) is an error naming every such link and its target, before anything is
      trained, unless the pipeline's ``LoadRSImageFromFile`` has ``on_error='skip'``: then a
      warning names each, and training goes on without them. (mmengine leaves them out
      silently: training on a part of the data without knowing it.)
    * a link loop (a folder link to a folder that contains it, or links pointing at each
      other) is an error naming the link and its target (mmengine recurses until the
      operating system's ``OSError: Too many levels of symbolic links``).

    A sample the pipeline skips (``LoadRSImageFromFile(on_error='skip')``) is
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
        if self.with_label or not isinstance(backend, LocalBackend):
            try:
                return super()._find_samples()
            except RuntimeError as e:
                if not str(e).startswith('Found 0 files'):
                    raise
            others = Counter(
                osp.splitext(f)[1].lower() or '(no extension)'
                for f in backend.list_dir_or_file(folder, list_dir=False, recursive=True))
        else:
            samples, others = self._list_local(folder)
            if samples:
                return samples
        held = ('it holds no files at all' if not others else
                'it holds ' + ', '.join(f'{n} {ext}' for ext, n in others.most_common(5)) +
                (' (and more)' if len(others) > 5 else '') + ' files')
        raise FileNotFoundError(
            f'RSImageFolder: no image file under {osp.abspath(folder)!r} (searched '
            f'recursively for {exts}); {held}. Point data_root at the folder with the '
            'images, or add their extension to extensions=(...) if LoadRSImageFromFile can '
            'read them (OpenCV formats, multi-page TIFF, .npy).')

    def _list_local(self, root: str):
        """The image files under a local ``root`` as mmengine lists them, links checked.

        Same result as mmpretrain's listing (relative paths, sorted; files whose name starts
        with '.' are left out, folders are entered whatever their name; links to files and
        folders are followed), plus the checks of the class docstring.

        Returns:
            (sorted relative paths of the image files, Counter of the other files' extensions)
        """
        samples: List[str] = []
        others: Counter = Counter()
        dangling: List[str] = []
        # each folder to visit, with the identities (device, inode) of the folders above it
        stack = [(root, frozenset([_identity(os.stat(root))]))]
        while stack:
            folder, above = stack.pop()
            with os.scandir(folder) as entries:
                entries = list(entries)
            for entry in entries:
                if entry.is_symlink():
                    try:
                        info = os.stat(entry.path)  # follows the link(s)
                    except FileNotFoundError:
                        ext = osp.splitext(entry.name)[1]
                        if not entry.name.startswith('.') and (
                                not ext or self.is_valid_file(entry.name)):
                            dangling.append(entry.path)
                        continue
                    except OSError as e:
                        if e.errno == errno.ELOOP:
                            raise OSError(
                                e.errno, f'RSImageFolder: the symbolic link {entry.path!r} '
                                f'(-> {os.readlink(entry.path)!r}) is part of a loop of links '
                                'that never reaches a file or folder. Remove it, or point it at '
                                'the real file / folder.') from None
                        raise
                    is_dir, is_file = stat.S_ISDIR(info.st_mode), stat.S_ISREG(info.st_mode)
                else:
                    is_dir = entry.is_dir(follow_symlinks=False)
                    is_file = entry.is_file(follow_symlinks=False)
                    info = entry.stat(follow_symlinks=False) if is_dir else None
                if is_file and not entry.name.startswith('.'):
                    rel = osp.relpath(entry.path, root)
                    if self.is_valid_file(rel):
                        samples.append(rel)
                    else:
                        others[osp.splitext(entry.name)[1].lower() or '(no extension)'] += 1
                elif is_dir:
                    key = _identity(info)
                    if key in above:  # a link (or a bind mount) back to a folder above
                        link = (f'the symbolic link {entry.path!r} (-> '
                                f'{os.readlink(entry.path)!r})' if entry.is_symlink() else
                                f'{entry.path!r}')
                        raise OSError(
                            errno.ELOOP, f'RSImageFolder: {link} is the folder '
                            f'{osp.realpath(entry.path)!r}, which contains it: listing the '
                            'images would never end. Remove the link, or point it at a folder '
                            'that does not contain it.')
                    stack.append((entry.path, above | {key}))
        if dangling:
            self._report_dangling(root, sorted(dangling))
        return sorted(samples), others

    def _report_dangling(self, root: str, links: List[str]) -> None:
        named = '\n'.join(f'  {link} -> {os.readlink(link)}' for link in links)
        what = (f'{len(links)} symbolic link(s) under {osp.abspath(root)!r} point to nothing '
                '(the target was moved or deleted, or its storage is not mounted)')
        loaders = find_image_loaders(self.pipeline)
        if loaders and all(t.on_error == 'skip' for t in loaders):
            print_log(f'RSImageFolder: {what}; training without them (LoadRSImageFromFile has '
                      f"on_error='skip'):\n{named}", logger='current', level=logging.WARNING)
            return
        raise FileNotFoundError(
            f'RSImageFolder: {what}:\n{named}\nRestore the targets (mount the storage) or '
            "delete the links; or set on_error='skip' in LoadRSImageFromFile to train without "
            'them (each is then named in a warning).')

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


def _identity(info: os.stat_result):
    """A folder's identity on this machine: (device, inode)."""
    return info.st_dev, info.st_ino
