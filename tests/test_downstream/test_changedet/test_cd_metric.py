"""CDIoUMetric: the `changed` class's F1 / IoU with an undefined ratio counted as 0, so a
model that predicts no change can never be the best checkpoint (mmseg's mFscore gives it ~96).
"""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope
from mmseg.registry import DATASETS, METRICS, MODELS
from mmseg.structures import SegDataSample
from mmengine.structures import PixelData

from tests.test_downstream.test_changedet.cd_utils import REPO, TINY

META = dict(classes=('unchanged', 'changed'), palette=[[0, 0, 0], [255, 255, 255]])


def _sample(pred, gt):
    s = SegDataSample()
    s.pred_sem_seg = PixelData(data=torch.as_tensor(pred)[None])
    s.gt_sem_seg = PixelData(data=torch.as_tensor(gt)[None])
    return s.to_dict()


def _evaluate(pairs, **kwargs):
    metric = METRICS.build(dict(type='CDIoUMetric', **kwargs))
    metric.dataset_meta = META
    for pred, gt in pairs:
        metric.process({}, [_sample(pred, gt)])
    return metric.evaluate(len(pairs))


def _mask(n_changed, size=10):
    m = torch.zeros(size, size, dtype=torch.long)
    m.view(-1)[:n_changed] = 1
    return m


def test_a_no_change_prediction_scores_zero_where_mfscore_gives_97():
    gt = _mask(5)  # 5 changed pixels of 100
    metrics = _evaluate([(torch.zeros(10, 10, dtype=torch.long), gt)])
    for key in ('changed_F1', 'changed_IoU', 'changed_Precision', 'changed_Recall'):
        assert metrics[key] == 0.0, key
    # mmseg's own numbers, unchanged: the nan-mean keeps the `unchanged` F1 (2*.95/1.95) alone
    assert metrics['mFscore'] == 97.44
    assert metrics['mIoU'] == 47.5  # (95/100 + 0) / 2


def test_changed_scores_are_the_changed_class_pixel_counts():
    # two images: TP 3, FP 2, FN 4 in total for `changed`
    gt1, pred1 = _mask(5), _mask(3)                      # TP 3, FN 2
    gt2 = _mask(2)
    pred2 = torch.zeros(10, 10, dtype=torch.long)
    pred2.view(-1)[50:52] = 1                            # FP 2, FN 2
    m = _evaluate([(pred1, gt1), (pred2, gt2)])
    tp, fp, fn = 3, 2, 4
    assert m['changed_F1'] == round(100 * 2 * tp / (2 * tp + fp + fn), 2) == 50.0
    assert m['changed_IoU'] == round(100 * tp / (tp + fp + fn), 2) == 33.33
    assert m['changed_Precision'] == 60.0 and m['changed_Recall'] == round(300 / 7, 2)


def test_labels_without_change_and_no_change_predicted_count_as_zero():
    m = _evaluate([(torch.zeros(4, 4, dtype=torch.long), torch.zeros(4, 4, dtype=torch.long))])
    assert m['changed_F1'] == m['changed_IoU'] == 0.0


def test_ignored_pixels_are_left_out_and_class_by_index():
    gt = _mask(5)
    gt[9, :] = 255  # ignore_index: the last row does not count
    pred = _mask(5)
    pred[9, :] = 1  # predicted changed on ignored pixels: not a false positive
    m = _evaluate([(pred, gt)], changed_class=1)
    assert m['changed_F1'] == m['changed_IoU'] == 100.0


def test_unknown_changed_class_names_the_classes_when_the_dataset_is_known():
    metric = METRICS.build(dict(type='CDIoUMetric', changed_class='building'))
    with pytest.raises(KeyError, match=r"changed_class='building'.*\('unchanged', 'changed'\)"):
        metric.dataset_meta = META  # what the Runner does when it builds the val loop
    metric = METRICS.build(dict(type='CDIoUMetric', changed_class=2))
    with pytest.raises(IndexError, match='changed_class=2 is not a class index'):
        metric.dataset_meta = META
    with pytest.raises(ValueError, match='beta'):
        METRICS.build(dict(type='CDIoUMetric', beta=2))


@pytest.mark.parametrize('name', ['siam-upernet_cmid-r50_40k_levir-cd-512x512.py', 'bit_cmid-r50_200e_cdd-256x256.py',
                                  'siam-upernet_cmid-swin-b_40k_cdd-256x256.py'])
def test_configs_select_the_best_checkpoint_by_changed_f1(name):
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'changedet', name))
    assert cfg.val_evaluator.type == cfg.test_evaluator.type == 'CDIoUMetric'
    assert cfg.default_hooks.checkpoint.save_best == 'changed_F1'
    assert cfg.default_hooks.checkpoint.rule == 'greater'


def test_a_real_model_that_predicts_no_change_loses_to_one_that_predicts_change():
    """The LEVIR-CD config's model (ResNet-18 depth, small heads) on the tiny real pairs, its
    classifier biased to `unchanged` everywhere, then to `changed` everywhere: the config's
    evaluator and save_best key rank the no-change model last, mmseg's mFscore first."""
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'changedet', 'siam-upernet_cmid-r50_40k_levir-cd-512x512.py'))
    cfg.merge_from_dict({
        'model.backbone.depth': 18, 'model.backbone.init_cfg': None,
        'model.decode_head.in_channels': [128, 256, 512, 1024], 'model.decode_head.channels': 16,
        'model.auxiliary_head.in_channels': 512, 'model.auxiliary_head.channels': 16,
        'val_dataloader.dataset.data_root': TINY,
        'val_dataloader.dataset.pipeline.1.scale': (64, 64),
    })
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model).eval()
        val_set = DATASETS.build(cfg.val_dataloader.dataset)
    key = cfg.default_hooks.checkpoint.save_best

    def run(bias):
        with torch.no_grad():
            model.decode_head.conv_seg.weight.zero_()
            model.decode_head.conv_seg.bias.copy_(torch.tensor(bias))
        with DefaultScope.overwrite_default_scope('mmseg'):
            metric = METRICS.build(cfg.val_evaluator)
        metric.dataset_meta = val_set.metainfo
        preds = []
        with torch.no_grad():
            for i in range(len(val_set)):
                data = pseudo_collate([val_set[i]])
                out = model.test_step(data)
                preds.append(out[0].pred_sem_seg.data)
                metric.process(data, [o.to_dict() for o in out])
        return metric.evaluate(len(val_set)), torch.cat([p.flatten() for p in preds])

    no_change, pred0 = run([5., -5.])
    all_change, pred1 = run([-5., 5.])
    assert pred0.max() == 0 and pred1.min() == 1  # the models predict what they should
    assert no_change[key] == 0.0 and no_change['changed_IoU'] == 0.0
    assert no_change['mFscore'] > 80  # what mFscore would have kept as "best"
    assert 0 < all_change[key] < 100
    assert all_change['mFscore'] < no_change['mFscore']
    assert all_change[key] > no_change[key]  # save_best (rule 'greater') keeps this one
