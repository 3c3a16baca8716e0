"""End to end on real imagery (data/rs_sample): a short tools/train.py run with the
visualisation hook and TensorBoard switched on in the config, then every visualisation tool on
that run's checkpoint and log."""
import glob
import importlib.util
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

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
DEMO = osp.join(REPO, 'configs', 'cmid_demo_resnet18_rs-sample.py')
IMAGES = [osp.join(REPO, 'data', 'rs_sample', 'images', name)
          for name in ('neon528_y0000_x0000.png', 's2_y0364_x0722.png')]
VIEW = 128  # crop size of the demo config
MIM_HW = (PAD + 2 * (VIEW + TITLE_HEIGHT + PAD), PAD + 4 * (VIEW + PAD))  # 2 views x 4 panels


def _tool(name):
    path = osp.join(REPO, 'tools', 'visualization', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'vis_tool_{name}', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


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


def test_vis_mim_matching_pca_tools_on_real_images(run, tmp_path, capsys):
    _tool('vis_mim').main([run.cfg, run.ckpt, *IMAGES, '--out-dir', str(tmp_path),
                           '--scale', '1', '--seed', '3'])
    first = _png(tmp_path / 'mim_neon528_y0000_x0000.png')
    assert first.shape == MIM_HW + (3, )
    assert _png(tmp_path / 'mim_s2_y0364_x0722.png').shape == MIM_HW + (3, )
    _tool('vis_mim').main([run.cfg, run.ckpt, *IMAGES[:1], '--out-dir', str(tmp_path / 'again'),
                           '--scale', '1', '--seed', '3'])  # --seed makes it repeatable
    np.testing.assert_array_equal(_png(tmp_path / 'again' / 'mim_neon528_y0000_x0000.png'),
                                  first)

    _tool('vis_matching').main([run.cfg, *IMAGES[:1], '--out-dir', str(tmp_path), '--scale',
                                '2'])
    match = _png(tmp_path / 'matching_neon528_y0000_x0000.png')
    # 2 rows (directions) x [source 256 x 256 | A | B at 256 px]
    assert match.shape == (PAD + 2 * (256 + TITLE_HEIGHT + PAD),
                           PAD + 256 + PAD + 2 * 256 + GAP + PAD, 3)

    out = tmp_path / 'pca.png'
    _tool('vis_pca').main([run.cfg, run.ckpt, *IMAGES, '--size', '256', '--out', str(out),
                           '--source', 'teacher'])
    assert _png(out).shape == (PAD + 256 + TITLE_HEIGHT + PAD, PAD + 4 * (256 + PAD), 3)
    assert 'feature map 8x8' in capsys.readouterr().out
    with pytest.raises(KeyError, match='not a full CMID training checkpoint'):
        torch.save({'state_dict': {'backbone.conv1.weight': torch.zeros(1)}},
                   tmp_path / 'b.pth')
        _tool('vis_mim').main([run.cfg, str(tmp_path / 'b.pth'), *IMAGES[:1]])


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


def test_hook_arguments_and_model_check():
    from mmpretrain.registry import HOOKS
    with pytest.raises(ValueError, match='interval, num_samples and scale >= 1'):
        HOOKS.build(dict(type='CMIDVisualizationHook', interval=0))
    hook = HOOKS.build(dict(type='CMIDVisualizationHook', interval=1))
    runner = SimpleNamespace(model=torch.nn.Linear(1, 1), iter=0)
    with pytest.raises(AttributeError, match='needs a CMID model'):
        hook.after_train_iter(runner, 0, data_batch={'inputs': []})
