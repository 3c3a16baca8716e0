"""configs/study build, share the study's settings, and take the runner's budget options."""
import glob
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from tests.utils import load_tool

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CONFIGS = sorted(glob.glob(osp.join(REPO, 'projects', 'benchmarks', 'configs', '*.py')))
TRAINED = [c for c in CONFIGS if not c.endswith('random.py')]


study = load_tool('projects/benchmarks/learning_signal_study.py')


def _build(cfg):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    import cmid_mm  # noqa: F401  (registers CMID, its heads and transforms)
    init_default_scope('mmpretrain')
    return MODELS.build(cfg.model)


def test_every_method_has_a_config():
    names = {osp.splitext(osp.basename(c))[0] for c in CONFIGS}
    assert names == set(study.ALL_METHODS)


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.basename(p))
def test_config_builds(path):
    cfg = Config.fromfile(path)
    model = _build(cfg)
    assert cfg.model.data_preprocessor.mean == cfg.pool_mean
    assert cfg.model.data_preprocessor.std == cfg.pool_std
    # the evaluated backbone is a stock ResNet-18 under `backbone.` (student / online net)
    keys = {k for k in model.state_dict() if k.startswith('backbone.')}
    assert 'backbone.layer4.1.conv2.weight' in keys
    assert model.backbone.depth == 18
    # every method starts from the same initialisation as `random` (iteration 0 of the curves)
    assert model.backbone.zero_init_residual is False


def test_trained_configs_share_pool_batch_optimizer_budget():
    common = None
    for path in TRAINED:
        cfg = Config.fromfile(path)
        dl = cfg.train_dataloader
        shared = (dl.batch_size, dl.dataset.data_root, dl.dataset.data_prefix,
                  dl.sampler.type, cfg.train_cfg.type, cfg.train_cfg.max_iters,
                  cfg.optim_wrapper.optimizer.type, cfg.optim_wrapper.optimizer.lr,
                  cfg.optim_wrapper.optimizer.weight_decay,
                  [s.type for s in cfg.param_scheduler], cfg.default_hooks.checkpoint.by_epoch,
                  cfg.default_hooks.checkpoint.max_keep_ckpts)
        common = common or shared
        assert shared == common, path
        assert dl.batch_size == 32 and cfg.train_cfg.type == 'IterBasedTrainLoop'
        assert not any(h.type == 'ExactResumeHook' for h in cfg.custom_hooks)
        pipeline = [t.type for t in dl.dataset.pipeline]
        assert 'PerSampleSeed' not in pipeline  # needs an epoch loop


@pytest.mark.parametrize('path', [c for c in TRAINED if 'cmid' in osp.basename(c)],
                         ids=lambda p: osp.basename(p))
def test_cmid_geometry_fits_96px(path):
    cfg = Config.fromfile(path)
    crop = cfg.crop_size
    cells = crop // 32
    assert cells >= 3  # ResNet last stage
    assert 1 <= cfg.model.num_matches <= cells * cells
    views = cfg.train_dataloader.dataset.pipeline[1].transforms
    for view in views:
        mask = [t for t in view if t.type == 'BlockMaskGenerator'][0]
        assert mask.input_size == crop and crop % mask.block_size == 0
        assert mask.block_size % 4 == 0  # stride-4 token grid of the masked backbone
    assert cfg.model.global_head.queue_len % cfg.train_dataloader.batch_size == 0


def test_ablation_weights():
    w = {osp.basename(p): Config.fromfile(p).model for p in TRAINED if 'cmid' in p}
    assert w['cmid_mim-only.py'].loss_weights == dict(loss_rec=1., loss_global=0.,
                                                      loss_local=0.)
    assert w['cmid_global-only.py'].loss_weights == dict(loss_rec=0., loss_global=1.,
                                                         loss_local=0.)
    assert w['cmid_local-only.py'].loss_weights == dict(loss_rec=0., loss_global=0.,
                                                        loss_local=1.)
    assert w['cmid_no-ffl.py'].mim_head.loss_freq.loss_weight == 0.0
    assert w['cmid.py'].mim_head.get('loss_freq') is None  # the head's default, weight 1
    assert w['cmid.py'].loss_weights == dict(loss_rec=1., loss_global=1., loss_local=1.)


def test_no_ffl_really_drops_the_frequency_term():
    cfg = Config.fromfile(osp.join(REPO, 'projects', 'benchmarks', 'configs', 'cmid_no-ffl.py'))
    head = _build(cfg).mim_head
    with torch.no_grad():
        losses = head.loss(torch.randn(2, 512, 3, 3), torch.randn(2, 3, 96, 96),
                           torch.ones(2, 24, 24))
    assert float(losses['loss_freq']) == 0.0 and float(losses['loss_spatial']) > 0


@pytest.mark.parametrize('method', ['cmid', 'mocov2'])
def test_budget_options_merge(method):
    cfg = Config.fromfile(osp.join(REPO, 'projects', 'benchmarks', 'configs', f'{method}.py'))
    iters = study.round_budget(20, 3)
    assert iters == 21
    opts = study.budget_options(method, iters, 3, seed=7, iters_per_epoch=6,
                                data_root='/x/rs_study', num_workers=0)
    cfg.merge_from_dict(dict(o.split('=', 1) for o in opts))
    assert int(cfg.train_cfg.max_iters) == 21
    assert int(cfg.param_scheduler[0].end) == int(cfg.param_scheduler[1].begin) == 2
    assert int(cfg.param_scheduler[1].end) == 21
    assert int(cfg.default_hooks.checkpoint.interval) == 7
    assert study.checkpoint_iters(21, 3) == [7, 14, 21]
    assert int(cfg.randomness.seed) == 7
    assert cfg.train_dataloader.dataset.data_root == '/x/rs_study'
    if method == 'cmid':
        assert float(cfg.model.local_head.warmup_teacher_temp_epochs) == pytest.approx(1.05)
    else:
        assert not any('local_head' in o for o in opts)


def test_parse_times_skips_warmup_and_checkpoint_iterations(tmp_path):
    vis = tmp_path / '20260101_000000' / 'vis_data'
    vis.mkdir(parents=True)
    times = {1: 9., 2: 5., 3: 1., 4: 1.2, 5: 3., 6: 1.1}  # checkpoint after 4 -> 5 slow
    with open(vis / 'scalars.json', 'w') as f:
        for i, t in times.items():
            f.write(json.dumps(dict(iter=i, time=t, data_time=0.01, loss=1.)) + '\n')
        f.write('not json\n')
    out = study.parse_times(str(tmp_path), ckpt_iters=[4])
    assert out['logged_iters'] == 6 and out['steady_iters'] == 3
    assert out['s_per_iter_median'] == pytest.approx(1.1)
    assert out['train_loop_s'] == pytest.approx(sum(times.values()))


def _fake_eval(wrong):
    """Evaluation record whose predictions miss the first ``wrong`` of 10 test units of every
    patch task (targets 0, 1, 0, 1, ...: balanced accuracy 1 - wrong / 10 for even ``wrong``)
    and whose dense map has ``wrong`` false-positive pixels (IoU 20 / (20 + wrong))."""
    target = np.array([0, 1] * 5)
    pred = target.copy()
    pred[:wrong] = 1 - pred[:wrong]
    pm = dict(acc=1 - wrong / 10, bacc=1 - wrong / 10, macro_f1=0., pred=pred.tolist())
    out = {t: dict(knn=dict(pm), linear=dict(pm, l2=0.1)) for t in study.PATCH_TASKS}
    out[study.DENSE_TASK] = dict(
        iou=20 / (20 + wrong), pixel_acc=0., bacc=0., l2=1.0,
        blocks=dict(tp=[5] * 4, fp=[wrong, 0, 0, 0], fn=[0] * 4, tn=[5] * 4, size=30))
    return out


def _fake_study():
    """Records of a 6-iteration study with 2 seeds: args, runs, randoms, baseline, targets."""
    args = study.parse_args(['--iters', '6', '--seeds', '0', '1', '--checkpoints', '3',
                             '--n-boot', '400'])
    timing = dict(s_per_iter_median=1.5, data_s_per_iter_median=0.01, wall_clock_s=20.)
    # CMID: right everywhere at the end, 4 wrong at iteration 4; MoCo-v2: 4 / 6 wrong (seeds)
    wrong = {'cmid': {0: {2: 6, 4: 4, 6: 0}, 1: {2: 6, 4: 4, 6: 0}},
             'mocov2': {0: {2: 6, 4: 6, 6: 4}, 1: {2: 6, 4: 6, 6: 6}}}
    runs = {m: {s: dict(method=m, seed=s, iters=6, timing=timing,
                        evals={str(i): _fake_eval(w) for i, w in per_it.items()},
                        eval_s={'2': 10., '4': 10., '6': 10.})
                for s, per_it in seeds.items()} for m, seeds in wrong.items()}
    randoms = {s: dict(method='random', seed=s, iters=0, evals={'0': _fake_eval(10)},
                       eval_s={'0': 9.}) for s in (0, 1)}
    info = dict(cpu_model='test cpu', cpu_count=2, torch='x', mmpretrain='y', python='z',
                date='2026-01-01')
    targets = {t: np.array([0, 1] * 5) for t in study.PATCH_TASKS}
    return args, runs, randoms, _fake_eval(10), targets, info


def test_report_from_fake_runs(tmp_path):
    args, runs, randoms, baseline, targets, info = _fake_study()
    res = study.aggregate(runs, randoms, baseline, targets, 6, args, info, 204, 32)
    cm = res['summary']['cmid']['building/linear/bacc']
    assert (cm['mean'], cm['lo'], cm['hi'], cm['per_seed']) == (1.0, 1.0, 1.0, [1.0, 1.0])
    assert res['summary']['mocov2']['road/knn/bacc']['mean'] == pytest.approx(0.5)
    d = res['comparisons']['mocov2']['road/knn/bacc']
    assert d['mean'] == pytest.approx(0.5) and d['verdict'] == 'better' and d['lo'] > 0
    assert res['comparisons']['baseline']['trees/linear/bacc']['mean'] == pytest.approx(1.0)
    dense = res['comparisons']['mocov2']['building_dense/linear/iou']
    assert dense['mean'] == pytest.approx(1 - (20 / 24 + 20 / 26) / 2)
    # the curves start at the random initialisation; CMID still rises from 4 to 6
    assert res['curves']['cmid']['iters'] == [0, 2, 4, 6]
    assert res['curves']['cmid']['road/knn/bacc'][0]['mean'] == 0.0
    assert res['plateau']['cmid']['building/linear/bacc']['mean'] == pytest.approx(0.4)
    assert res['plateau']['cmid']['building/linear/bacc']['verdict'] == 'better'
    assert res['plateau']['mocov2']['building/linear/bacc']['mean'] == pytest.approx(0.1)
    assert res['total_run_and_probe_s'] == pytest.approx(4 * (20 + 30) + 2 * 9)
    study.write_markdown(res, str(tmp_path / 'results.md'))
    text = (tmp_path / 'results.md').read_text()
    assert '| CMID | 100.0 [100.0, 100.0] |' in text
    assert '| MoCo-v2 | +50.0 [' in text and '**better**' in text
    assert '| CMID, 4 -> 6 | +40.0 [' in text and '**still rising**' in text
    study.plot(res, str(tmp_path / 'probe_vs_iters.png'))
    assert (tmp_path / 'probe_vs_iters.png').stat().st_size > 10000
    json.dumps(res)  # serialisable


def test_rerun_records_are_checked_against_the_prediction_intervals(tmp_path):
    args, runs, randoms, baseline, targets, info = _fake_study()
    # MoCo-v2's final balanced accuracy is 0.6 / 0.4 over seeds 0 / 1: prediction interval
    # 0.5 +- t(0.975, 1) * 0.1414 * sqrt(1.5) = 0.5 +- 2.2, cut to the metric's range [0, 1];
    # a rerun of seed 1 at 0.6 is inside;
    # CMID's is 1.0 on both seeds (no spread): a rerun one unit off (0.9) is outside
    args.records = str(tmp_path / 'rerun')
    for method, wrong in (('mocov2', 4), ('cmid', 1)):
        rec = dict(method=method, seed=1, iters=6, evals={'6': _fake_eval(wrong)},
                   environment=dict(cpu_model='other cpu', pinned=False))
        study.write_record(study.record_path(args, method, 1, 6), rec)
    rerun = study.load_records(args.records, 6)
    assert sorted(rerun) == ['cmid', 'mocov2'] and list(rerun['cmid']) == [1]
    res = study.aggregate(runs, randoms, baseline, targets, 6, args, info, 204, 32,
                          rerun=rerun)
    moco = res['rerun']['mocov2/seed1']['columns']['road/linear/bacc']
    assert moco['value'] == pytest.approx(0.6) and moco['published'] == pytest.approx(0.4)
    assert moco['inside'] and (moco['pred_lo'], moco['pred_hi']) == (0.0, 1.0)
    cm = res['rerun']['cmid/seed1']['columns']['road/linear/bacc']
    assert cm['published'] == 1.0 and (cm['pred_lo'], cm['pred_hi']) == (1.0, 1.0)
    assert cm['value'] == pytest.approx(0.9) and not cm['inside']
    study.write_markdown(res, str(tmp_path / 'results.md'))
    text = (tmp_path / 'results.md').read_text()
    assert '| cmid/seed1 | other cpu, pinned=False | 0 of 9 |' in text
    assert '| MoCo-v2 | 0.0 – 100.0 |' in text  # the cut prediction interval, in %

