"""projects/benchmarks/benchmark_speed.py: the ratios it reports, the batch formats it feeds
mmpretrain's algorithms, and one tiny real run (workers, same batch, JSON + markdown).
Timing targets are the script's business, not the tests'."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from tests.utils import load_tool

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
SCRIPT = osp.join(REPO, 'projects', 'benchmarks', 'benchmark_speed.py')


bench = load_tool(osp.relpath(SCRIPT, REPO))


def _step(median, rss, gflops):
    return dict(times_s=[median], median_s=median, images_per_s=8 / median,
                idle_rss_mb=rss / 2, peak_rss_mb=rss, gflops=gflops)


def test_summarise_ratios_by_hand():
    results = dict(
        archs=dict(r50=dict(steps=dict(
            cmid=_step(5.0, 3900., 575.), **{'cmid-min': _step(4.0, 3000., 500.)},
            mocov2=_step(2.5, 2000., None)))),
        pipeline=dict(cmid_images_per_s=80.0, byol_images_per_s=70.0))
    ratios = bench.summarise(results)['archs']['r50']['ratios']
    assert ratios['cmid_over_min_time'] == pytest.approx(1.25)
    assert ratios['cmid_over_min_peak_rss'] == pytest.approx(1.3)
    assert ratios['cmid_over_min_flops'] == pytest.approx(1.15)
    assert ratios['cmid_over_mocov2_time'] == pytest.approx(2.0)
    # CMID: 8 images / 5 s = 1.6 images/s; the pipeline does 80 -> 50x
    assert ratios['pipeline_over_step_images_per_s'] == pytest.approx(50.0)
    assert 'cmid_over_byol_time' not in ratios


def test_cmid_batch_adapted_for_each_algorithm():
    args = bench.parse_args(['--batch-size', '2', '--img-size', '64'])
    batch = bench.make_batch(args)
    views = batch['inputs']
    assert len(views) == 2 and views[0].shape == (2, 3, 64, 64)
    assert batch['data_samples'][0].mask.shape == (2, 16, 16)
    # the pipeline is a function of (seed 0, epoch 0, index): two builds give the same batch
    assert bench.batch_digest(batch) == bench.batch_digest(bench.make_batch(args))
    moco = bench.adapt_batch('mocov2', batch)
    assert [torch.equal(a, b) for a, b in zip(moco['inputs'], views)] == [True, True]
    simmim = bench.adapt_batch('simmim', batch)
    assert torch.equal(simmim['inputs'], views[0])
    assert torch.equal(torch.as_tensor(simmim['data_samples'][1].mask),
                       torch.as_tensor(batch['data_samples'][1].mask[0]))


def test_tiny_run_writes_json_and_markdown(tmp_path):
    cmd = [sys.executable, SCRIPT,
           '--archs', 'resnet18', '--variants', 'cmid', 'cmid-min', '--batch-size', '2',
           '--warmup', '0', '--reps', '1', '--threads', '1',
           '--pipeline-samples', '4', '--no-flops', '--out-dir', str(tmp_path)]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    res = json.load(open(tmp_path / 'speed.json'))
    steps = res['archs']['resnet18']['steps']
    assert set(steps) == {'cmid', 'cmid-min'}
    for s in steps.values():  # one timed round each, FLOPs not counted (--no-flops)
        assert len(s['times_s']) == 1 and s['median_s'] == s['times_s'][0]
        assert s['images_per_s'] == pytest.approx(2 / s['median_s'])
        assert s['gflops'] is None and s['peak_rss_mb'] >= s['idle_rss_mb']
    assert set(res['archs']['resnet18']['ratios']) == {
        'cmid_over_min_time', 'cmid_over_min_peak_rss', 'pipeline_over_step_images_per_s'}
    assert set(res['pipeline']) == {'cmid_images_per_s', 'byol_images_per_s'}
    assert res['machine']['cpu_count'] == os.cpu_count()
    assert '## resnet18' in (tmp_path / 'speed.md').read_text()
    # paths recorded relative to the repository, never the machine's layout
    out = f'<outside>/{tmp_path.name}'
    assert res['args']['data_root'] == osp.join('data', 'rs_sample')
    assert res['args']['out_dir'] == out
    assert res['command'].startswith('python projects/benchmarks/benchmark_speed.py --archs')
    assert res['command'].endswith(f'--out-dir {out}')
    assert REPO not in json.dumps(res) and str(tmp_path) not in json.dumps(res)
    assert f'images of {osp.join("data", "rs_sample")})' in (tmp_path / 'speed.md').read_text()
