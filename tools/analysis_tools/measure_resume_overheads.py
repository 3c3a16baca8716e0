"""Print what exact resume costs: the checkpoint check of ``--resume auto`` against a full
``torch.load`` of the same file, and the per-sample / per-iteration reseeding.

    python tools/analysis_tools/measure_resume_overheads.py [CHECKPOINT.pth]

Without a checkpoint, a 300 MB one (random tensors) is written to a temporary folder first.
"""
import argparse
import os
import os.path as osp
import sys
import tempfile
import time

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

import torch  # noqa: E402

from cmid_mm.datasets.transforms import PerSampleSeed  # noqa: E402
from cmid_mm.engine.checkpoint_guard import checkpoint_problem  # noqa: E402
from cmid_mm.engine.hooks.exact_resume_hook import reseed_global_rngs  # noqa: E402


def best_of(fn, repeat):
    """Smallest wall time of ``repeat`` calls, seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint', nargs='?', help='a checkpoint file to check and load')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.checkpoint
        if path is None:
            path = osp.join(tmp, 'epoch_1.pth')
            torch.save({'state_dict': {f'w{i}': torch.randn(1 << 20) for i in range(75)},
                        'meta': {'epoch': 1, 'iter': 1}}, path)
        size_mb = os.path.getsize(path) / 2**20
        assert checkpoint_problem(path) is None, checkpoint_problem(path)
        check = best_of(lambda: checkpoint_problem(path), 20)
        load = best_of(lambda: torch.load(path, map_location='cpu'), 3)
        print(f'checkpoint {path}: {size_mb:.0f} MB')
        print(f'  checkpoint_problem (zip directory check): {check * 1e3:.2f} ms')
        print(f'  torch.load (full read, warm page cache):   {load * 1e3:.0f} ms')

    t = PerSampleSeed()
    t.set_epoch(seed=0, epoch=3)
    results = dict(sample_idx=12345, img_path='data/rs_sample/images/s2_0001.png')
    n = 2000
    per_sample = best_of(lambda: [t(results) for _ in range(n)], 3) / n
    per_iter = best_of(lambda: [reseed_global_rngs(1, 0, i) for i in range(n)], 3) / n
    print(f'PerSampleSeed per sample:                     {per_sample * 1e6:.1f} us')
    print(f'ExactResumeHook reseed per iteration (+epoch): {per_iter * 1e6:.1f} us')

    # For scale: one sample of the demo config's train pipeline (armed).
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import DATASETS
    init_default_scope('mmpretrain')
    repo = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
    cfg = Config.fromfile(osp.join(repo, 'configs', 'cmid_demo_resnet18_rs-sample.py'))
    cfg.train_dataloader.dataset.data_root = osp.join(repo, 'data', 'rs_sample')
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    seeders = [t for t in dataset.pipeline.transforms if isinstance(t, PerSampleSeed)]
    for seeder in seeders:
        seeder.set_epoch(seed=0, epoch=0)
    count = min(len(dataset), 32)
    sample = best_of(lambda: [dataset[i] for i in range(count)], 3) / count
    print(f'demo train pipeline per sample (for scale):   {sample * 1e3:.1f} ms '
          f'({len(seeders)} PerSampleSeed in it)')


if __name__ == '__main__':
    main()
