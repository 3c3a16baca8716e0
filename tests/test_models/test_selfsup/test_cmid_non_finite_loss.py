"""A non-finite CMID loss names the term and the iteration and leaves queue and centre alone;
a non-finite loss weight is refused at build."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmengine.logging import MessageHub
from mmengine.registry import init_default_scope
from mmpretrain.registry import DATASETS, MODELS

import cmid_mm  # noqa: F401  (registers the CMID modules)
from tests.utils import REPO

DEMO = osp.join(REPO, 'configs', 'cmid_demo_resnet18_rs-sample.py')


def _demo_model_and_batch():
    cfg = Config.fromfile(DEMO)
    init_default_scope('mmpretrain')
    hub = MessageHub.get_current_instance()
    hub.update_info('max_iters', 10)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    data_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    data_cfg.data_root = osp.join(REPO, 'data', 'rs_sample')
    data_cfg.indices = 2
    ds = DATASETS.build(data_cfg)
    data = model.data_preprocessor(default_collate([ds[0], ds[1]]), training=True)
    return model, data['inputs'], data['data_samples']


def test_non_finite_loss_names_the_term_and_leaves_queue_and_centre():
    model, views, samples = _demo_model_and_batch()
    MessageHub.get_current_instance().update_info('iter', 17)
    views[1][0, 0, 5, 5] = float('inf')  # one corrupt pixel of view B
    params = {k: p.detach().clone() for k, p in model.named_parameters()}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(FloatingPointError, match=r"iteration 17: \{'loss_rec': nan"):
        model.loss(views, samples)
    after = model.state_dict()
    # the queue, its pointer and the DINO centre are updated only after the check
    for key in ('global_head.queue', 'global_head.queue_ptr', 'local_head.center'):
        assert torch.equal(after[key], state[key]), key
    # no student weight changed (BN running statistics did: the forward pass ran; the EMA
    # teacher took its step towards the unchanged student before the forward pass)
    assert all(torch.equal(p, params[k]) for k, p in model.named_parameters()
               if not k.startswith('teacher.'))


def test_non_finite_loss_weight_is_refused_at_build():
    cfg = Config.fromfile(DEMO).model
    cfg.loss_weights = dict(loss_local=float('nan'))
    with pytest.raises(ValueError, match=r"loss_weights must be finite.*'loss_local': nan"):
        MODELS.build(cfg)
