"""End to end on real imagery (data/rs_sample): a short tools/train.py run with the
visualisation hook and TensorBoard switched on in the config, then every visualisation tool on
that run's checkpoint and log."""
import glob
import os
import os.path as osp
import subprocess
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from cmid_mm.visualization.image import PAD, TITLE_HEIGHT
from cmid_mm.visualization.matching import GAP
from tests.utils import load_tool

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
DEMO = osp.join(REPO, 'configs', 'cmid_demo_resnet18_rs-sample.py')
IMAGES = [osp.join(REPO, 'data', 'rs_sample', 'images', name)
          for name in ('neon528_y0000_x0000.png', 's2_y0364_x0722.png')]
A, B = (osp.splitext(osp.basename(p))[0] for p in IMAGES)  # their names
VIEW = 128  # crop size of the demo config
MIM_HW = (PAD + 2 * (VIEW + TITLE_HEIGHT + PAD), PAD + 4 * (VIEW + PAD))  # 2 views x 4 panels


def _tool(name):
    return load_tool(f'tools/visualization/{name}.py', f'vis_tool_{name}')


def _png(path):
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, f'{path} is not a readable PNG'
    return img


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """4 iterations (1 epoch of 8 images, batch 2) with LocalVisBackend + TensorboardVisBackend
    and CMIDVisualizationHook(interval=2, num_samples=2)."""
    work = tmp_path_factory.mktemp('vis_run')
    cfg = work / 'cmid_demo_vis.py'
    cfg.write_text(
        f'_base_ = [{DEMO!r}]\n'
        "vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]\n"
        "visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)\n"
        "custom_hooks = _base_.custom_hooks + [\n"
        "    dict(type='CMIDVisualizationHook', interval=2, num_samples=2)]\n")
    cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), str(cfg), '--work-dir',
           str(work), '--cfg-options', 'train_dataloader.batch_size=2',
           'train_dataloader.num_workers=0', 'train_dataloader.dataset.indices=8',
           'train_cfg.max_epochs=1', 'default_hooks.checkpoint.interval=1',
           'default_hooks.logger.interval=1']
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    vis_data, = glob.glob(str(work / '*' / 'vis_data'))
    return SimpleNamespace(work=work, vis_data=vis_data, ckpt=str(work / 'epoch_1.pth'),
                           cfg=str(cfg))


def test_hook_sends_images_at_the_right_iterations_to_local_and_tensorboard(run):
    files = sorted(os.listdir(osp.join(run.vis_data, 'vis_image')))
    assert files == ['cmid_matching_2.png', 'cmid_matching_4.png', 'cmid_mim_2.png',
                     'cmid_mim_4.png']
    # two samples stacked with a 6 px gap; views enlarged x1 (the hook's default scale)
    mim = _png(osp.join(run.vis_data, 'vis_image', 'cmid_mim_4.png'))
    assert mim.shape == (2 * MIM_HW[0] + 6, MIM_HW[1], 3)
    match = _png(osp.join(run.vis_data, 'vis_image', 'cmid_matching_2.png'))
    assert match.shape == (2 * (PAD + 2 * (VIEW + TITLE_HEIGHT + PAD)) + 6,
                           PAD + 2 * VIEW + GAP + PAD, 3)
    events = glob.glob(osp.join(run.vis_data, 'events.out.tfevents.*'))
    assert len(events) == 1 and osp.getsize(events[0]) > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(events[0], size_guidance={'images': 0, 'scalars': 0})
    acc.Reload()
    assert sorted(acc.Tags()['images']) == ['cmid_matching', 'cmid_mim']
    mim_events = acc.Images('cmid_mim')
    assert [e.step for e in mim_events] == [2, 4]
    assert (mim_events[0].height, mim_events[0].width) == mim.shape[:2]
    decoded = cv2.imdecode(np.frombuffer(mim_events[1].encoded_image_string, np.uint8),
                           cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(decoded, mim)  # the same picture in both backends
    assert {'loss_rec', 'loss_global', 'loss_local', 'loss'} <= set(acc.Tags()['scalars'])
    assert [e.step for e in acc.Scalars('loss_local')] == [1, 2, 3, 4]


def test_plot_loss_curves_tool_on_the_run_log(run, tmp_path, capsys):
    out = tmp_path / 'curves.png'
    _tool('plot_loss_curves').main([str(run.work), '--out', str(out), '--size', '400', '800'])
    assert _png(out).shape == (400, 800, 3)
    assert '4 points' in capsys.readouterr().out
    default = run.work / 'loss_curves.png'
    _tool('plot_loss_curves').main([str(run.work)])
    assert _png(default).shape == (480, 960, 3)


def _pngs(tool, positional, images, options, out_dir, prefix):
    """Run a per-image tool on ``images`` into ``out_dir``; {image name: PNG}."""
    _tool(tool).main([*positional, *images, *options, '--out-dir', str(out_dir)])
    names = [osp.splitext(osp.basename(p))[0] for p in images]
    return {n: _png(out_dir / f'{prefix}_{n}.png') for n in names}


def test_vis_mim_renders_each_image_independently_of_the_others(run, tmp_path):
    """An image's MIM picture is a function of the image (and seed, checkpoint): drawn alone,
    first or last among other images, the same PNG bit for bit. By construction: its views are
    drawn from its own seed and the model runs on it alone (batch of 1), so the computation is
    the same in the three calls, not merely close."""
    pos, opts = [run.cfg, run.ckpt], ['--scale', '1', '--seed', '3']
    ab = _pngs('vis_mim', pos, IMAGES, opts, tmp_path / 'ab', 'mim')
    alone = _pngs('vis_mim', pos, IMAGES[:1], opts, tmp_path / 'a', 'mim')
    ba = _pngs('vis_mim', pos, IMAGES[::-1], opts, tmp_path / 'ba', 'mim')
    assert ab[A].shape == ab[B].shape == MIM_HW + (3, )
    np.testing.assert_array_equal(alone[A], ab[A])
    np.testing.assert_array_equal(ba[A], ab[A])
    np.testing.assert_array_equal(ba[B], ab[B])
    # the two images (and their draws) differ, so the equalities above are not vacuous
    assert np.abs(ab[A].astype(int) - ab[B].astype(int)).mean() > 10
    other_seed = _pngs('vis_mim', pos, IMAGES[:1], ['--scale', '1', '--seed', '4'],
                       tmp_path / 'seed4', 'mim')
    assert not np.array_equal(other_seed[A], alone[A])  # --seed does change the draws
    with pytest.raises(KeyError, match='not a full CMID training checkpoint'):
        torch.save({'state_dict': {'backbone.conv1.weight': torch.zeros(1)}},
                   tmp_path / 'b.pth')
        _tool('vis_mim').main([run.cfg, str(tmp_path / 'b.pth'), *IMAGES[:1]])


def test_vis_matching_renders_each_image_independently_of_the_others(run, tmp_path):
    pos, opts = [run.cfg], ['--checkpoint', run.ckpt, '--scale', '2']
    alone = _pngs('vis_matching', pos, IMAGES[:1], opts, tmp_path / 'a', 'matching')
    ba = _pngs('vis_matching', pos, IMAGES[::-1], opts, tmp_path / 'ba', 'matching')
    # 2 rows (directions) x [source 256 x 256 | A | B at 256 px]
    assert alone[A].shape == (PAD + 2 * (256 + TITLE_HEIGHT + PAD),
                              PAD + 256 + PAD + 2 * 256 + GAP + PAD, 3)
    np.testing.assert_array_equal(ba[A], alone[A])


def _pca_rows(run, images, out, *options):
    """vis_pca with one image | PCA pair per row; the rows, each cut with its padding."""
    _tool('vis_pca').main([run.cfg, run.ckpt, *images, '--size', '256', '--out', str(out),
                           '--source', 'teacher', '--per-row', '1', *options])
    grid = _png(out)
    row = 256 + TITLE_HEIGHT + PAD
    assert grid.shape == (PAD + len(images) * row, PAD + 2 * (256 + PAD), 3)
    return [grid[k * row:k * row + PAD + row] for k in range(len(images))]


def test_vis_pca_per_image_is_independent_of_the_others_and_joint_fit_is_documented(
        run, tmp_path, capsys):
    """--per-image: an image's pair of panels is a function of the image alone (features from a
    batch of 1, its own PCA), bit for bit. The joint PCA (default) depends on all images by
    design; what it promises is the same picture for the same command."""
    alone, = _pca_rows(run, IMAGES[:1], tmp_path / 'a.png', '--per-image')
    ab = _pca_rows(run, IMAGES, tmp_path / 'ab.png', '--per-image')
    ba = _pca_rows(run, IMAGES[::-1], tmp_path / 'ba.png', '--per-image')
    np.testing.assert_array_equal(ab[0], alone)
    np.testing.assert_array_equal(ba[1], alone)
    np.testing.assert_array_equal(ba[0], ab[1])
    assert not np.array_equal(ab[0], ab[1])
    assert 'one PCA per image' in capsys.readouterr().out

    joint = _pca_rows(run, IMAGES, tmp_path / 'joint.png')
    assert 'feature map 8x8' in capsys.readouterr().out
    np.testing.assert_array_equal(_pca_rows(run, IMAGES, tmp_path / 'joint2.png'), joint)
    # the image panels are the same in both modes; the joint colours are another fit
    x0 = PAD + 256 + PAD
    np.testing.assert_array_equal(joint[0][:, :x0], alone[:, :x0])
    assert not np.array_equal(joint[0][:, x0:], alone[:, x0:])


def test_vis_pca_features_come_from_one_image_at_a_time():
    from cmid_mm.utils import load_config
    from cmid_mm.visualization import build_cmid

    tool = _tool('vis_pca')
    cfg = load_config(DEMO)
    model = build_cmid(cfg)
    images = tool.load_images(IMAGES, tool.loader(cfg), 128)
    seen = []
    hook = model.teacher.module.backbone.register_forward_pre_hook(
        lambda m, args: seen.append(args[0].shape[0]))
    try:
        inputs, feat = tool.features(model, images, 'teacher')
        _, alone = tool.features(model, images[1:], 'teacher')
    finally:
        hook.remove()
    assert seen == [1, 1, 1]
    assert inputs.shape == (2, 3, 128, 128) and feat.shape == (2, 512, 4, 4)
    assert torch.equal(feat[1:], alone)


def test_batch_pictures_on_the_real_pipeline_leave_model_and_rng_untouched():
    from cmid_mm.utils import load_config
    from cmid_mm.visualization import (batch_pictures, build_cmid, pipeline_batch,
                                       stack_field)
    from cmid_mm.models.utils.mean_fill import upsample_mask

    cfg = load_config(DEMO)
    model = build_cmid(cfg).train()
    data = pipeline_batch(cfg, IMAGES, seed=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = (torch.get_rng_state(), np.random.get_state()[1].copy())
    pics = batch_pictures(model, data, num_samples=2)
    assert all(m.training for m in model.modules())  # modes restored
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN stats, queue, centre
    assert torch.equal(rng[0], torch.get_rng_state())
    assert np.array_equal(rng[1], np.random.get_state()[1])
    assert [p.shape for p in pics['mim']] == [MIM_HW + (3, )] * 2
    # panel (view B, target) = the pipeline's uint8 view B in RGB order
    grid = pics['mim'][1]
    y0 = PAD + (VIEW + TITLE_HEIGHT + PAD) + TITLE_HEIGHT
    target = grid[y0:y0 + VIEW, PAD:PAD + VIEW].astype(int)
    raw_b = data['inputs'][1][1].permute(1, 2, 0).numpy()[..., ::-1].astype(int)  # BGR -> RGB
    assert np.abs(target - raw_b).max() <= 1
    # panel (view B, masked input): mean fill of the normalised view inside the mask
    masked = grid[y0:y0 + VIEW, 2 * PAD + VIEW:2 * PAD + 2 * VIEW].astype(int)
    mask = torch.as_tensor(stack_field(data['data_samples'], 'mask'))[1, 1]
    pm = upsample_mask(mask[None], (VIEW, VIEW))[0, 0].bool().numpy()
    assert pm.sum() == 10 * 32 * 32  # 10 of the 16 blocks of 32 px (demo config)
    raw_mean = raw_b.reshape(-1, 3).mean(0)
    assert np.abs(masked[pm] - raw_mean).max() <= 1
    np.testing.assert_array_equal(masked[~pm], target[~pm])


def test_pipeline_batch_draws_each_image_from_the_seed_and_its_name():
    """An image's views, masks, boxes and flips depend on the seed and its file name, not on
    the other images or its position (the RNGs are reseeded per image)."""
    from cmid_mm.utils import load_config
    from cmid_mm.visualization import pipeline_batch, stack_field

    cfg = load_config(DEMO)
    ab = pipeline_batch(cfg, IMAGES, seed=1)
    ba = pipeline_batch(cfg, IMAGES[::-1], seed=1)
    alone = pipeline_batch(cfg, IMAGES[:1], seed=1)
    fields = ('mask', 'crop_bbox', 'flip')

    def sample(data, i):
        return ([v[i] for v in data['inputs']],
                [stack_field(data['data_samples'], k)[i] for k in fields])

    for (views, info), (ref_views, ref_info) in (
            (sample(ba, 1), sample(ab, 0)), (sample(alone, 0), sample(ab, 0)),
            (sample(ba, 0), sample(ab, 1))):
        assert all(torch.equal(v, r) for v, r in zip(views, ref_views))
        assert all(np.array_equal(x, r) for x, r in zip(info, ref_info))
    # the two images get different draws, and another seed other draws of the same image
    a, b = sample(ab, 0)[1], sample(ab, 1)[1]
    assert not np.array_equal(a[0], b[0]) and not np.array_equal(a[1], b[1])
    assert not np.array_equal(sample(pipeline_batch(cfg, IMAGES[:1], seed=2), 0)[1][0], a[0])
    with pytest.raises(FileNotFoundError, match='nope.png'):
        pipeline_batch(cfg, ['nope.png'])
    with pytest.raises(ValueError, match='at least one image'):
        pipeline_batch(cfg, [])


def test_batch_pictures_run_the_model_on_one_sample_at_a_time():
    """Every model call of ``batch_pictures`` sees a batch of 1, so a sample's pictures are
    computed identically whatever else is in the batch: equal bit for bit."""
    from cmid_mm.utils import load_config
    from cmid_mm.visualization import batch_pictures, build_cmid, pipeline_batch

    cfg = load_config(DEMO)
    model = build_cmid(cfg)
    seen = []

    def record(name):
        def hook(module, args):
            x = args[0]
            seen.append((name, len(x['data_samples']) if isinstance(x, dict) else x.shape[0]))
        return hook

    hooks = [m.register_forward_pre_hook(record(n)) for n, m in (
        ('preprocessor', model.data_preprocessor), ('backbone', model.backbone),
        ('mim_head', model.mim_head))]
    try:
        ab = batch_pictures(model, pipeline_batch(cfg, IMAGES, seed=1), num_samples=2)
    finally:
        for h in hooks:
            h.remove()
    assert sorted(set(seen)) == [('backbone', 1), ('mim_head', 1), ('preprocessor', 1)]
    assert len(seen) == 2 * (1 + 2 + 2)  # per sample: 1 preprocessing, 2 views
    ba = batch_pictures(model, pipeline_batch(cfg, IMAGES[::-1], seed=1), num_samples=2)
    alone = batch_pictures(model, pipeline_batch(cfg, IMAGES[:1], seed=1), num_samples=5)
    assert len(alone['mim']) == 1  # num_samples is capped at the batch size
    for kind in ('mim', 'matching'):
        np.testing.assert_array_equal(alone[kind][0], ab[kind][0])
        np.testing.assert_array_equal(ba[kind][1], ab[kind][0])
        np.testing.assert_array_equal(ba[kind][0], ab[kind][1])
        assert not np.array_equal(ab[kind][0], ab[kind][1])


def test_hook_arguments_and_model_check():
    from mmpretrain.registry import HOOKS
    with pytest.raises(ValueError, match='interval, num_samples and scale >= 1'):
        HOOKS.build(dict(type='CMIDVisualizationHook', interval=0))
    hook = HOOKS.build(dict(type='CMIDVisualizationHook', interval=1))
    runner = SimpleNamespace(model=torch.nn.Linear(1, 1), iter=0)
    with pytest.raises(AttributeError, match='needs a CMID model'):
        hook.after_train_iter(runner, 0, data_batch={'inputs': []})
