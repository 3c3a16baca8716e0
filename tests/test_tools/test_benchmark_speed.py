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


def test_summarise_bf16_and_ab_ratios_by_hand():
    def step(median, rss, losses):
        return dict(_step(median, rss, None), first_step_losses=losses)
    results = dict(archs=dict(r50=dict(steps={
        'cmid': step(4.0, 3000., dict(loss_rec=2.0, loss_global=4.0)),
        'cmid-bf16': step(2.0, 2700., dict(loss_rec=2.002, loss_global=4.0)),
        'cmid@main': step(5.0, 3300., dict(loss_rec=2.0, loss_global=3.996))})))
    res = bench.summarise(results)['archs']['r50']
    ratios = res['ratios']
    assert ratios['bf16_speedup'] == pytest.approx(2.0)
    assert ratios['bf16_over_fp32_peak_rss'] == pytest.approx(0.9)
    assert ratios['speedup_over_main'] == pytest.approx(1.25)  # main's time / ours
    assert ratios['speedup_over_main_paired'] == pytest.approx(1.25)  # one round
    assert ratios['bf16_speedup_paired'] == pytest.approx(2.0)
    # per-round ratios 2, 1, 2 (the medians' ratio would be 5 / 3)
    assert bench._paired(dict(times_s=[4., 5., 6.]), dict(times_s=[2., 5., 3.])) == 2.0
    assert ratios['peak_rss_over_main'] == pytest.approx(3000 / 3300)
    diffs = res['first_step_loss_rel_diff']
    assert diffs['cmid-bf16 vs cmid'] == pytest.approx(dict(loss_rec=1e-3, loss_global=0.0))
    # relative to the second of the pair (main's loss)
    assert diffs['cmid vs cmid@main'] == pytest.approx(dict(loss_rec=0.0,
                                                            loss_global=0.004 / 3.996))
    text = bench.markdown(dict(results, args=dict(threads=2, batch_size=8, img_size=224,
                                                 warmup=1, reps=1),
                               machine=dict(date='2026-01-01', cpu_model='x', cpu_count=2,
                                            python='3', torch='2'), command='c'))
    assert '| speedup_over_main | 1.250 | >= 1.2 |' in text
    assert '| cmid-bf16 vs cmid | 1.00e-03 | 0.00e+00 | - |' in text


def test_ab_rev_extracts_a_commit_and_names_a_bad_one():
    if subprocess.run(['git', '-C', REPO, 'rev-parse', 'HEAD'], capture_output=True).returncode:
        pytest.skip('not a git checkout')
    folder, commit = bench.extract_rev('HEAD')
    try:
        assert len(commit) == 40
        assert osp.isfile(osp.join(folder, 'cmid_mm', '__init__.py'))
        assert osp.isfile(osp.join(folder, 'configs', '_base_', 'models', 'cmid_resnet50.py'))
    finally:
        import shutil
        shutil.rmtree(folder)
    with pytest.raises(SystemExit, match="--ab-rev 'no-such-rev-xyz' is not a commit"):
        bench.extract_rev('no-such-rev-xyz')


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
    """Two variants of this tree and the committed HEAD's CMID step (``--ab-rev``), one
    profiled step each."""
    has_git = not subprocess.run(['git', '-C', REPO, 'rev-parse', 'HEAD'],
                                 capture_output=True).returncode
    cmd = [sys.executable, SCRIPT,
           '--archs', 'resnet18', '--variants', 'cmid', 'cmid-min', '--batch-size', '2',
           '--warmup', '0', '--reps', '1', '--threads', '1', '--profile', '--profile-rows', '3',
           '--pipeline-samples', '4', '--no-flops', '--out-dir', str(tmp_path)]
    if has_git:
        cmd += ['--ab-rev', 'HEAD']
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    res = json.load(open(tmp_path / 'speed.json'))
    steps = res['archs']['resnet18']['steps']
    assert set(steps) == {'cmid', 'cmid-min'} | ({'cmid@HEAD'} if has_git else set())
    for s in steps.values():  # one timed round each, FLOPs not counted (--no-flops)
        assert len(s['times_s']) == 1 and s['median_s'] == s['times_s'][0]
        assert s['images_per_s'] == pytest.approx(2 / s['median_s'])
        assert s['gflops'] is None and s['peak_rss_mb'] >= s['idle_rss_mb']
        assert len(s['profile']['top_ops']) == 3 and s['profile']['parts_ms']['backward'] > 0
    assert set(steps['cmid']['first_step_losses']) == {'loss', 'loss_rec', 'loss_global',
                                                       'loss_local'}
    assert 'teacher EMA' in steps['cmid']['profile']['parts_ms']
    ratios = res['archs']['resnet18']['ratios']
    expected = {'cmid_over_min_time', 'cmid_over_min_peak_rss',
                'pipeline_over_step_images_per_s'}
    if has_git:
        expected |= {'speedup_over_HEAD', 'speedup_over_HEAD_paired', 'peak_rss_over_HEAD'}
        # same seed, same batch, same maths: HEAD's first-step losses within float rounding
        diffs = res['archs']['resnet18']['first_step_loss_rel_diff']['cmid vs cmid@HEAD']
        assert max(diffs.values()) < 1e-4
        assert len(res['ab_rev']['commit']) == 40
    assert set(ratios) == expected
    assert set(res['pipeline']) == {'cmid_images_per_s', 'byol_images_per_s'}
    assert res['machine']['cpu_count'] == os.cpu_count()
    assert len(res['machine']['loadavg_start']) == 3
    assert '## resnet18' in (tmp_path / 'speed.md').read_text()
    # paths recorded relative to the repository, never the machine's layout
    out = f'<outside>/{tmp_path.name}'
    assert res['args']['data_root'] == osp.join('data', 'rs_sample')
    assert res['args']['out_dir'] == out
    assert res['command'].startswith('python projects/benchmarks/benchmark_speed.py --archs')
    assert f'--out-dir {out}' in res['command'].split(' --ab-rev')[0]
    assert REPO not in json.dumps(res) and str(tmp_path) not in json.dumps(res)
    assert f'images of {osp.join("data", "rs_sample")})' in (tmp_path / 'speed.md').read_text()
