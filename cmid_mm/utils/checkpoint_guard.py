"""Choose the checkpoint ``--resume auto`` continues from, never a file a crash left incomplete.

mmengine's auto-resume reads the path written in ``<work_dir>/last_checkpoint`` and loads it
blindly. That file names a checkpoint that may not be complete: a node that loses power after
writing ``last_checkpoint`` but before the page cache reached the disk leaves a truncated or
empty checkpoint, and a copy of the work dir can be cut short. (A process killed *while*
writing leaves a truncated ``epoch_N.pth`` next to an intact previous one, which
``last_checkpoint`` still names.) Loading such a file fails deep inside ``torch.load``, and a
job that is re-queued with ``--resume auto`` then fails forever.

:func:`find_resumable_checkpoint` tries the file ``last_checkpoint`` names first, then every
other ``epoch_*.pth`` / ``iter_*.pth`` of the work dir from newest to oldest (modification
time), and returns the first that is a complete, undamaged torch checkpoint, logging each file it
skipped and why. :func:`checkpoint_problem` is the test: a torch checkpoint is a zip archive whose
central directory is written last, so a truncated file has no (valid) central directory; the
directory must also list the pickle record and every member must lie inside the file. A file can
also be complete but damaged (a power loss that leaves zeroed pages inside it, a bad disk or
copy): every record carries a CRC-32 of its bytes, and every record is read and its CRC
verified. Nothing is unpickled; the cost is one sequential read of the file (about a second per
GB), once per resume.
"""
import glob
import logging
import os.path as osp
import re
import zipfile
from typing import Callable, List, Optional

from mmengine.logging import print_log

ZIP_LOCAL_MAGIC = b'PK\x03\x04'
LOCAL_HEADER_SIZE = 30  # fixed part of a zip local file header, bytes
RUNNER_CHECKPOINT = re.compile(r'^(epoch|iter)_\d+\.pth$')


def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` is not a complete torch checkpoint file, or ``None`` if it is one.

    Checks, without unpickling anything: the file exists and is not empty, starts like a zip
    archive, has a readable central directory (written last, so a truncated file has none),
    the directory lists a ``data.pkl`` record, every member ends inside the file, and every
    record's bytes match the CRC-32 stored for it (a complete file damaged after writing).
    Checkpoints saved with ``torch.save(..., _use_new_zipfile_serialization=False)`` (not a zip)
    are reported as not checkable.
    """
    try:
        size = osp.getsize(path)
    except OSError as e:
        return f'cannot be read ({e.strerror or e})'
    if osp.isdir(path):
        return 'is a directory, not a checkpoint file'
    if size == 0:
        return 'is empty (0 bytes)'
    with open(path, 'rb') as f:
        magic = f.read(len(ZIP_LOCAL_MAGIC))
    if magic != ZIP_LOCAL_MAGIC:
        return ('is not a torch zip checkpoint (it does not start with a zip header; legacy '
                'non-zip torch files cannot be checked)')
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as e:
        return (f'has no complete zip directory ({e}; {size} bytes): it was cut short, e.g. '
                'by a crash while it was being written')
    if not any(m.filename == 'data.pkl' or m.filename.endswith('/data.pkl') for m in members):
        return 'is a zip archive without a data.pkl record, not a torch checkpoint'
    for m in members:
        end = m.header_offset + LOCAL_HEADER_SIZE + len(m.filename.encode()) + m.compress_size
        if end > size:
            return (f'is truncated: member {m.filename!r} ends at byte {end} but the file has '
                    f'{size} bytes')
    return _damaged_record(path)


def _damaged_record(path: str) -> Optional[str]:
    """Read every record of the zip archive and verify its CRC-32; describe the first bad one."""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                try:
                    with archive.open(info) as record:
                        while record.read(1 << 22):
                            pass
                except (zipfile.BadZipFile, EOFError, OSError, ValueError, RuntimeError) as e:
                    return (f'is damaged: record {info.filename!r} ({info.file_size} bytes) '
                            f'fails its check ({e}); the file is complete but its content was '
                            'changed after it was written (e.g. zeroed by a power loss or a '
                            'bad disk/copy)')
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        return f'cannot be read as a zip archive ({e})'
    return None


def _recorded_checkpoint(work_dir: str) -> Optional[str]:
    """The path ``<work_dir>/last_checkpoint`` names (mmengine writes an absolute path).

    If that path does not exist but a file of the same name is in ``work_dir`` (the work dir
    was moved or copied), that file is meant.
    """
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        return None
    with open(pointer) as f:
        recorded = f.read().strip()
    if not recorded:
        return None
    if not osp.isabs(recorded):
        recorded = osp.join(work_dir, recorded)
    moved = osp.join(work_dir, osp.basename(recorded))
    if not osp.exists(recorded) and osp.exists(moved):
        return moved
    return recorded


def runner_checkpoints(work_dir: str) -> List[str]:
    """``epoch_N.pth`` / ``iter_N.pth`` of ``work_dir``, newest first (mtime, then name)."""
    paths = [p for p in glob.glob(osp.join(glob.escape(work_dir), '*.pth'))
             if RUNNER_CHECKPOINT.match(osp.basename(p))]

    def key(path):
        step = int(re.findall(r'\d+', osp.basename(path))[-1])
        return (osp.getmtime(path), step)

    return sorted(paths, key=key, reverse=True)


def _log(msg: str, level: int = logging.INFO) -> None:
    print_log(f'[resume auto] {msg}', logger='current', level=level)


def find_resumable_checkpoint(work_dir: str,
                              log: Callable[[str, int], None] = _log) -> Optional[str]:
    """The newest complete checkpoint of ``work_dir`` to resume from, or ``None``.

    Tries the file ``<work_dir>/last_checkpoint`` names, then the other ``epoch_*.pth`` /
    ``iter_*.pth`` files newest first, and returns the first one :func:`checkpoint_problem`
    accepts. Every file skipped is reported through ``log(message, logging.WARNING)``, with the
    reason, and the choice through ``log(message, logging.INFO)``.

    Returns ``None`` (training starts from scratch, as mmengine does without checkpoints) if
    the work dir has no complete checkpoint.
    """
    candidates = []
    recorded = _recorded_checkpoint(work_dir)
    if recorded is not None:
        candidates.append(recorded)
    for path in runner_checkpoints(work_dir):
        if not any(osp.exists(c) and osp.samefile(path, c) for c in candidates):
            candidates.append(path)
    skipped = []
    for path in candidates:
        problem = checkpoint_problem(path)
        if problem is None:
            how = ('named in last_checkpoint' if path == recorded else
                   'the newest complete checkpoint of the work dir')
            log(f'resuming from {path} ({how})' +
                (f'; skipped {len(skipped)} unusable file(s) above' if skipped else ''),
                logging.WARNING if skipped else logging.INFO)
            return path
        skipped.append(path)
        role = ' (named in last_checkpoint)' if path == recorded else ''
        log(f'skipping checkpoint {path}{role}: it {problem}. Falling back to an older one.',
            logging.WARNING)
    if skipped:
        log(f'no complete checkpoint in {work_dir} (skipped {len(skipped)}): training starts '
            'from scratch. Restore a checkpoint into the work dir or pass --resume PATH to '
            'continue instead.', logging.WARNING)
    else:
        log(f'no checkpoint in {work_dir}: training starts from scratch.', logging.INFO)
    return None
