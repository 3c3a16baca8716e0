"""Weighted k-NN maths (hand-computed) and the k-NN evaluation tool on real tiny data."""
import json
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config

import cmid_mm  # noqa: F401  (registers the CMID modules)
from cmid_mm.evaluation import knn_classify
from tests.utils import load_tool

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
DATA = osp.join(REPO, 'tests', 'data', 'scene_tiny')
DEMO_CFG = osp.join(REPO, 'configs', 'cmid_demo_resnet18_rs-sample.py')


def _load_tool():
    return load_tool('tools/analysis_tools/knn_eval.py')


# Unit vectors at angle 0 (class 0) and at +-53.13 deg (class 1): cos = 1.0, 0.6, 0.6 to x-axis.
TRAIN = torch.tensor([[1., 0.], [0.6, 0.8], [0.6, -0.8]])
LABELS = torch.tensor([0, 1, 1])


def test_knn_temperature_decides_between_nearest_and_majority():
    query = torch.tensor([[1., 0.]])
    # T = 0.07: exp(1/0.07) for class 0 outweighs 2 exp(0.6/0.07) for class 1.
    pred, scores = knn_classify(TRAIN, LABELS, query, k=3, T=0.07, num_classes=2)
    assert pred.tolist() == [0]
    torch.testing.assert_close(
        scores, torch.tensor([[math.exp(1 / 0.07), 2 * math.exp(0.6 / 0.07)]]), rtol=1e-5,
        atol=0)
    # T = 10: weights exp(0.1) = 1.105 vs 2 exp(0.06) = 2.124, the majority wins.
    pred, scores = knn_classify(TRAIN, LABELS, query, k=3, T=10., num_classes=2)
    assert pred.tolist() == [1]
    torch.testing.assert_close(scores, torch.tensor([[math.exp(0.1), 2 * math.exp(0.06)]]))


def test_knn_uses_only_k_neighbours_and_cosine_similarity():
    # query at 45 deg: cos to the train vectors = 0.7071, 0.9899, -0.1414.
    query = torch.tensor([[3., 3.]])  # unnormalised: only the direction may count
    pred, scores = knn_classify(TRAIN * 5, LABELS, query, k=1, T=0.5, num_classes=3)
    assert pred.tolist() == [1]
    cos = (0.6 + 0.8) / math.sqrt(2)
    torch.testing.assert_close(scores, torch.tensor([[0., math.exp(cos / 0.5), 0.]]))
    # k=2: neighbours are train 1 (class 1) and train 0 (class 0, cos 0.7071).
    _, scores = knn_classify(TRAIN, LABELS, query, k=2, T=0.5, num_classes=2)
    torch.testing.assert_close(
        scores, torch.tensor([[math.exp(math.sqrt(0.5) / 0.5), math.exp(cos / 0.5)]]))
    # k larger than the train set is clamped: every train vector votes.
    _, scores = knn_classify(TRAIN, LABELS, query, k=50, T=1., num_classes=2)
    expected = [math.exp(math.sqrt(0.5)), math.exp(cos) + math.exp(-0.2 / math.sqrt(2))]
    torch.testing.assert_close(scores, torch.tensor([expected]))


def test_knn_chunks_give_the_same_result_and_bad_labels_are_refused():
    g = torch.Generator().manual_seed(0)
    train, test = torch.randn(30, 8, generator=g), torch.randn(7, 8, generator=g)
    labels = torch.arange(30) % 4
    pred1, s1 = knn_classify(train, labels, test, k=5, T=0.1, num_classes=4, chunk_size=3)
    pred2, s2 = knn_classify(train, labels, test, k=5, T=0.1, num_classes=4)
    # The chunks are other matrix products, so the similarities (and scores) may differ in
    # the last bits (they do on some CPUs): scores to a tolerance; the predictions exactly,
    # because such rounding (~1e-7 relative) cannot change them here: the 5th and 6th
    # similarities and the two best class scores are far apart (margins asserted below).
    assert torch.equal(pred1, pred2)
    torch.testing.assert_close(s1, s2)
    sim = torch.nn.functional.normalize(test, dim=1) @ torch.nn.functional.normalize(
        train, dim=1).t()
    top6 = sim.topk(6, dim=1).values
    assert (top6[:, 4] - top6[:, 5]).min() > 1e-4  # measured 2.3e-4
    best2 = s2.topk(2, dim=1).values
    assert ((best2[:, 0] - best2[:, 1]) / best2[:, 0]).min() > 0.1  # measured 0.24
    # each row holds the weights of exactly the k = 5 most similar train vectors
    torch.testing.assert_close(s1.sum(1), (sim.topk(5, dim=1).values / 0.1).exp().sum(1))
    with pytest.raises(ValueError, match=r'\[0, 3\)'):
        knn_classify(train, labels, test, k=5, T=0.1, num_classes=3)


@pytest.fixture(scope='module')
def cmid_checkpoint(tmp_path_factory):
    """A real (randomly initialised) CMID ResNet-18 training checkpoint of the demo config.

    The EMA teacher is shifted by +1 so that student and teacher weights differ, as after
    training.
    """
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(DEMO_CFG).model)
    state = model.state_dict()
    for key, value in state.items():
        if key.startswith('teacher.module.backbone.') and value.is_floating_point():
            value += 1
    path = str(tmp_path_factory.mktemp('knn') / 'cmid_r18.pth')
    torch.save({'state_dict': state, 'meta': {}}, path)
    return path, state


def test_tool_loads_every_backbone_tensor_and_refuses_a_wrong_architecture(cmid_checkpoint):
    tool = _load_tool()
    path, state = cmid_checkpoint
    for source, prefix in (('student', 'backbone.'), ('teacher', 'teacher.module.backbone.')):
        loaded = tool.load_backbone(Config.fromfile(DEMO_CFG), path, source).state_dict()
        assert len(loaded) == 121  # ResNet-18: 120 entries, + the CMID mask token (not loaded)
        same = [k for k, v in loaded.items() if torch.equal(v, state[prefix + k])]
        assert len(same) >= 120 and set(loaded) - set(same) <= {'mask_token'}
    cfg = Config.fromfile(DEMO_CFG)
    cfg.model.backbone.depth = 50
    with pytest.raises(ValueError, match='does not fit'):
        tool.load_backbone(cfg, path)


def test_knn_eval_tool_end_to_end(cmid_checkpoint, tmp_path, capsys):
    tool = _load_tool()
    out = tmp_path / 'knn.json'
    report = tool.main([
        DEMO_CFG, cmid_checkpoint[0], '--train-dir', osp.join(DATA, 'train'), '--val-dir',
        osp.join(DATA, 'val'), '--k', '5', '--temperature', '0.07', '--img-size', '64',
        '--batch-size', '8', '--out', str(out)
    ])
    assert 'top-1 accuracy' in capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert saved == report
    assert saved['classes'] == ['building', 'no_building']
    assert (saved['num_train'], saved['num_val'], saved['feature_dim']) == (20, 20, 512)
    assert 0.0 <= saved['top1'] <= 1.0
    assert saved['num_correct'] == round(saved['top1'] * 20)
    per_class = [saved['per_class_top1'][c] for c in saved['classes']]
    assert saved['top1'] == pytest.approx(sum(per_class) / 2)  # 10 val images per class


def test_knn_eval_tool_reads_split_annotation_files(cmid_checkpoint, tmp_path):
    split_main = load_tool('tools/dataset_converters/split_folder_dataset.py').main
    root = osp.join(DATA, 'train')
    split_main([root, '--out-dir', str(tmp_path), '--train-ratio', '0.5', '--seed', '0'])
    report = _load_tool().main([
        DEMO_CFG, cmid_checkpoint[0], '--train-dir', root, '--val-dir', root,
        '--train-ann', str(tmp_path / 'train.txt'), '--val-ann', str(tmp_path / 'val.txt'),
        '--k', '3', '--img-size', '32', '--out', str(tmp_path / 'knn.json')])
    assert (report['num_train'], report['num_val'], report['k_used']) == (10, 10, 3)
    assert report['classes'] == ['building', 'no_building']
    assert list(report['per_class_top1']) == ['building', 'no_building']
