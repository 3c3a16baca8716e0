"""checkpoint_problem finds every way a checkpoint file can be cut; find_resumable_checkpoint
(``--resume auto``) falls back to the newest complete checkpoint and says why."""
import logging
import os
import zipfile

import torch

import cmid_mm  # noqa: F401  (allow-lists mmengine checkpoint globals)
from cmid_mm.utils.checkpoint_guard import checkpoint_problem, find_resumable_checkpoint


def _save(path, value=0.):
    torch.save({'meta': {'epoch': 1}, 'state_dict': {'w': torch.full((4096, ), value)}}, path)
    return str(path)


def test_checkpoint_problem_finds_every_cut(tmp_path):
    good = _save(tmp_path / 'good.pth')
    assert checkpoint_problem(good) is None
    data = open(good, 'rb').read()
    for n in (0, 3, 100, len(data) // 2, len(data) - 23, len(data) - 1):
        cut = tmp_path / f'cut{n}.pth'
        cut.write_bytes(data[:n])
        problem = checkpoint_problem(str(cut))
        assert problem is not None, f'{n} of {len(data)} bytes accepted'
        assert ('empty' in problem) if n == 0 else ('cut short' in problem or 'zip' in problem)
    assert 'cannot be read' in checkpoint_problem(str(tmp_path / 'missing.pth'))
    (tmp_path / 'text.pth').write_text('not a checkpoint')
    assert 'not a torch zip checkpoint' in checkpoint_problem(str(tmp_path / 'text.pth'))
    with zipfile.ZipFile(tmp_path / 'other.pth', 'w') as z:
        z.writestr('a/readme.txt', 'hello')
    assert 'without a data.pkl' in checkpoint_problem(str(tmp_path / 'other.pth'))


def test_find_resumable_checkpoint_order_and_messages(tmp_path):
    messages = []

    def log(msg, level):
        messages.append((level, msg))

    assert find_resumable_checkpoint(str(tmp_path), log) is None  # empty dir: from scratch
    assert messages[-1][0] == logging.INFO and 'starts from scratch' in messages[-1][1]

    paths = [_save(tmp_path / f'epoch_{i}.pth', i) for i in (1, 2, 3)]
    for i, p in enumerate(paths):  # distinct mtimes, oldest first
        os.utime(p, (1e9 + i, 1e9 + i))
    _save(tmp_path / 'exported_backbone.pth')  # newest, complete, but not a Runner checkpoint
    pointer = tmp_path / 'last_checkpoint'
    pointer.write_text(paths[2])
    messages.clear()
    assert find_resumable_checkpoint(str(tmp_path), log) == paths[2]
    assert messages == [(logging.INFO, f'resuming from {paths[2]} (named in last_checkpoint)')]

    # the newest is cut, the one before is empty: fall back to epoch_1, saying why twice
    open(paths[2], 'r+b').truncate(1000)
    open(paths[1], 'w').close()
    messages.clear()
    assert find_resumable_checkpoint(str(tmp_path), log) == paths[0]
    levels, texts = zip(*messages)
    assert levels == (logging.WARNING, ) * 3
    assert texts[0].startswith(f'skipping checkpoint {paths[2]} (named in last_checkpoint): '
                               'it has no complete zip directory')
    assert texts[1] == (f'skipping checkpoint {paths[1]}: it is empty (0 bytes). Falling back '
                        'to an older one.')
    assert texts[2].startswith(f'resuming from {paths[0]} (the newest complete checkpoint')

    # a work dir moved elsewhere: last_checkpoint names the old absolute path
    pointer.write_text('/nonexistent/old_place/epoch_1.pth')
    assert find_resumable_checkpoint(str(tmp_path), log) == paths[0]
    # an empty last_checkpoint (crash while writing it) and only broken files: from scratch
    pointer.write_text('')
    open(paths[0], 'r+b').truncate(10)
    messages.clear()
    assert find_resumable_checkpoint(str(tmp_path), log) is None
    assert len(messages) == 4 and 'no complete checkpoint' in messages[-1][1]
