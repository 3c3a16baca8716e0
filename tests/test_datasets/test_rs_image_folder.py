"""RSImageFolder: missing / empty / foreign folders name the folder and the config key; skipped
samples are replaced without cycles (also under PerSampleSeed) and counted across workers."""
import os.path as osp

import pytest
import torch
from mmengine.dataset import pseudo_collate

from cmid_mm.datasets import RSImageFolder
from tests.test_datasets.bad_files import folder_with_bad_files, log_warnings_to


def _skip_pipeline():
    return [dict(type='PerSampleSeed'), dict(type='LoadRSImageFromFile', on_error='skip')]


def test_skipped_sample_is_replaced_without_cycles_under_per_sample_seed(tmp_path):
    """mmengine's refetch draws the replacement from numpy's RNG, which PerSampleSeed has just
    reseeded from the bad sample: the same replacement every time, and when that is the bad
    sample itself the dataset retries it until max_refetch. RSImageFolder mixes in the attempt.
    """
    from mmpretrain.datasets import CustomDataset
    d = folder_with_bad_files(tmp_path, n_bad=1, n_good=1)
    log_warnings_to(tmp_path)
    failed = {}
    for cls in (CustomDataset, RSImageFolder):
        failed[cls.__name__] = 0
        ds = cls(data_root=str(d), with_label=False, max_refetch=30, serialize_data=False,
                 pipeline=_skip_pipeline())
        for epoch in range(12):
            ds.pipeline.transforms[0].set_epoch(0, epoch)
            try:
                out = ds[0]
            except Exception:
                failed[cls.__name__] += 1
                continue
            assert osp.basename(out['img_path']).startswith('b_')
    assert failed['RSImageFolder'] == 0
    assert failed['CustomDataset'] > 0, failed  # why RSImageFolder has its own refetch loop


def test_all_files_bad_in_skip_mode_is_a_clear_error(tmp_path):
    d = folder_with_bad_files(tmp_path, n_bad=2, n_good=0)
    log_warnings_to(tmp_path)
    ds = RSImageFolder(data_root=str(d), max_refetch=3, serialize_data=False,
                       pipeline=_skip_pipeline())
    with pytest.raises(RuntimeError) as info:
        ds[0]
    msg = str(info.value)
    assert str(d) in msg and '3 random replacements were all skipped' in msg
    assert "on_error='raise'" in msg


def test_skip_counts_include_dataloader_workers(tmp_path):
    """Counts live in shared memory: 2 forked workers report what num_workers=0 reports."""
    d = folder_with_bad_files(tmp_path, n_bad=2, n_good=4)
    log_warnings_to(tmp_path)
    counts = []
    for workers in (0, 2):
        ds = RSImageFolder(data_root=str(d), serialize_data=False, pipeline=_skip_pipeline())
        ds.pipeline.transforms[0].set_epoch(7, 0)  # deterministic replacements
        loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=workers,
                                             collate_fn=pseudo_collate,
                                             multiprocessing_context='fork' if workers else None)
        assert len([b for b in loader]) == 6
        counts.append(ds.pipeline.transforms[1].skip_counts()['unreadable'])
    assert counts[0] >= 2 and counts[1] == counts[0], counts


def test_missing_folder_names_it_and_the_config_key(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        RSImageFolder(data_root=str(tmp_path / 'MillionAID'), pipeline=[])
    msg = str(info.value)
    assert str(tmp_path / 'MillionAID') in msg and 'does not exist' in msg
    assert 'train_dataloader.dataset.data_root' in msg


def test_empty_folder_names_it_and_the_extensions(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError) as info:
        RSImageFolder(data_root=str(tmp_path / 'empty'), pipeline=[])
    msg = str(info.value)
    assert str(tmp_path / 'empty') in msg and 'holds no files at all' in msg
    assert '.jpg' in msg and '.tiff' in msg


def test_folder_of_other_files_says_what_it_holds(tmp_path):
    d = tmp_path / 'jp2'
    (d / 'sub').mkdir(parents=True)
    for i in range(3):
        (d / 'sub' / f'tile{i}.jp2').write_bytes(b'x')
    (d / 'readme.txt').write_text('x')
    with pytest.raises(FileNotFoundError) as info:
        RSImageFolder(data_root=str(d), pipeline=[])
    msg = str(info.value)
    assert '3 .jp2, 1 .txt files' in msg and 'extensions=(...)' in msg
