"""Run by ``torch.distributed.run`` in test_ddp.py (with 2 processes and with 1): a tiny CMID
wrapped in ``DeviceAgnosticDDP`` trains a few steps on a fixed global batch, each rank on its
contiguous share, and every rank dumps what the test compares.

    python -m torch.distributed.run --nproc_per_node=2 --master_addr=127.0.0.1 \
        --master_port=PORT tests/integration/ddp_cmid_worker.py OUT_DIR [--runs swin,vit]

Writes ``OUT_DIR/{run}_w{world}_r{rank}.pt``: per step the rank-local loss terms, the raw
teacher keys of this rank (view A, view B, captured at the teacher's global projector), the
queue pointer before the step, the DDP-averaged gradients of the student, and the full model
state after the step (student, teacher, queue, pointer, DINO centre); also the state right
after the DDP wrap. ``OUT_DIR/syncbn_w{world}_r{rank}
.json`` records what ``torch.nn.SyncBatchNorm`` does on CPU in this process group.

The data path is the real one (``DeviceAgnosticDDP.train_step``: data preprocessor, DDP
forward, backward with gradient all-reduce, optimizer step); the inputs are fixed tensors, so
sampling and augmentation play no part.
"""
import argparse
import copy
import json
import os
import os.path as osp
import sys

import numpy as np
import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.logging import MessageHub, MMLogger
from mmengine.optim import OptimWrapper
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))
from cmid_mm.utils import DeviceAgnosticDDP, init_dist, release_distributed  # noqa: E402

SIZE = 64  # 2x2 blocks of 32 px; stride-4 token grid 16x16
QUEUE_LEN = 16  # 2 steps of a global batch of 4 fill it; the third step wraps around
MAX_ITERS = 10  # CosineEMA schedule length


def _cfg(backbone, feat_ch, stride=32, num_matches=2, with_bn=False, freq=False):
    """A tiny CMID. ``freq=False`` sets the focal-frequency weight to 0 (see test_ddp.py)."""
    return dict(
        type='CMID',
        data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[0., 0., 0.],
                               std=[1., 1., 1.]),
        backbone=backbone,
        mim_head=dict(type='CMIDMIMHead', in_channels=feat_ch, encoder_stride=stride,
                      in_chans=3,
                      loss_freq=dict(type='FocalFrequencyLoss', loss_weight=float(freq))),
        global_neck=dict(type='MoCoV2Neck', in_channels=feat_ch, hid_channels=32,
                         out_channels=16, with_avg_pool=True),
        global_head=dict(type='QueueContrastiveHead', feat_dim=16, queue_len=QUEUE_LEN,
                         temperature=0.2),
        local_neck=dict(type='CMIDLocalNeck', in_channels=feat_ch, hid_channels=32,
                        bottleneck_channels=8, out_channels=24, num_layers=3,
                        with_bn=with_bn),
        local_head=dict(type='DINOLocalHead', out_channels=24),
        num_matches=num_matches)


SWIN = dict(type='CMIDSwinTransformer',
            arch=dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2]),
            img_size=SIZE, window_size=2, out_indices=(3, ),
            drop_path_rate=0.0)  # stochastic depth draws per-rank random numbers
VIT = dict(type='CMIDVisionTransformer',
           arch=dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
           img_size=SIZE, patch_size=16, out_type='featmap')
RESNET = dict(type='CMIDResNet', depth=18, base_channels=16, out_indices=(3, ),
              norm_cfg=dict(type='BN'))

RUNS = {
    # no BatchNorm, no batch-level statistics in any loss: exact equivalence expected
    'swin': _cfg(SWIN, 128),
    'vit': _cfg(VIT, 32, stride=16, num_matches=6),
    # the focal frequency loss averages spectra over the (per-rank) batch
    'swin_freq': _cfg(SWIN, 128, freq=True),
    # BatchNorm (backbone and local head) normalises with per-rank batch statistics
    'resnet_bn': _cfg(RESNET, 128, with_bn=True),
    # as 'swin', but every rank builds its model from its own seed (what the Runner does with
    # randomness.diff_rank_seed=True): the random queue initialisation then differs per rank
    'swin_rankseed': _cfg(SWIN, 128),
}
RANK_SEEDED = {'swin_rankseed'}


def global_batch(step: int, size: int):
    """The fixed global batch of ``step``: two views, masks, crop boxes and flips.

    Every image masks exactly 2 of its 4 blocks per view (as CMID's block masks always mask a
    fixed number of blocks), so the masked-pixel average over a batch is a per-image mean.
    """
    g = torch.Generator().manual_seed(1000 + step)
    views = [torch.randn(size, 3, SIZE, SIZE, generator=g) for _ in range(2)]
    samples = []
    for i in range(size):
        ds = DataSample()
        mask = np.zeros((2, 16, 16), np.uint8)
        for v in range(2):
            for b in torch.randperm(4, generator=g)[:2].tolist():
                r, c = divmod(b, 2)
                mask[v, 8 * r:8 * r + 8, 8 * c:8 * c + 8] = 1
        ds.set_mask(mask)
        box = torch.randint(0, 60, (2, 2), generator=g).float()
        hw = torch.randint(80, 140, (2, 2), generator=g).float()
        ds.set_field(torch.cat([box, hw], 1).numpy(), 'crop_bbox')
        ds.set_field(np.array([[200, 200], [200, 200]]), 'crop_src_shape')
        ds.set_field((torch.rand(2, generator=g) < 0.5).numpy(), 'flip')
        samples.append(ds)
    return views, samples


class GradCapturingOptimWrapper(OptimWrapper):
    """An OptimWrapper that keeps a copy of the gradients right before each optimizer step,
    i.e. after DDP has all-reduced (averaged) them."""

    def __init__(self, optimizer, names, **kwargs):
        super().__init__(optimizer, **kwargs)
        self.names = names
        self.grads = None

    def step(self, **kwargs):
        self.grads = {self.names[p]: p.grad.detach().clone()
                      for group in self.optimizer.param_groups for p in group['params']}
        super().step(**kwargs)


def run(name: str, steps: int, global_size: int, out_dir: str) -> None:
    rank, world = get_rank(), get_world_size()
    if global_size % world:
        raise ValueError(f'--global-batch {global_size} is not divisible by the world size '
                         f'{world}')
    per_rank = global_size // world
    hub = MessageHub.get_current_instance()
    hub.update_info('max_iters', MAX_ITERS)
    # The same initial model in every process, except for the rank-seeded run (DDP broadcasts
    # the parameters of rank 0; buffers such as the queue only as DeviceAgnosticDDP does).
    torch.manual_seed(rank if name in RANK_SEEDED else 0)
    model = MODELS.build(copy.deepcopy(RUNS[name]))
    model.init_weights()
    model.train()
    keys = []
    hook = model.teacher.module.global_neck.register_forward_hook(
        lambda mod, args, out: keys.append(out[0].detach().clone()))
    # As tools/train.py on CPU (prepare_cpu_distributed): no device_ids, no buffer broadcast,
    # so the queue / centre / teacher stay in step by their own synchronisation, not DDP's.
    ddp = DeviceAgnosticDDP(model, device_ids=[int(os.environ.get('LOCAL_RANK', 0))],
                            broadcast_buffers=False, find_unused_parameters=False)
    params = [p for p in model.parameters() if p.requires_grad]
    names = {p: n for n, p in model.named_parameters() if p.requires_grad}
    optim = GradCapturingOptimWrapper(torch.optim.SGD(params, lr=0.1, momentum=0.9), names)
    init_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    records = []
    for step in range(steps):
        hub.update_info('iter', step)
        views, samples = global_batch(step, global_size)
        lo, hi = rank * per_rank, (rank + 1) * per_rank
        data = dict(inputs=[v[lo:hi] for v in views], data_samples=samples[lo:hi])
        ptr_before = int(model.global_head.queue_ptr)
        keys.clear()
        log_vars = ddp.train_step(data, optim)
        records.append(dict(
            losses={k: float(v.detach()) for k, v in log_vars.items()},
            keys=[k.clone() for k in keys],  # [view A, view B] of this rank
            ptr_before=ptr_before,
            grads=optim.grads,
            state={k: v.detach().clone() for k, v in model.state_dict().items()}))
    hook.remove()
    torch.save(dict(rank=rank, world=world, per_rank=per_rank, init_state=init_state,
                    records=records),
               osp.join(out_dir, f'{name}_w{world}_r{rank}.pt'))
    del ddp, model, optim, params, names


def probe_syncbn(out_dir: str) -> None:
    """What torch's SyncBatchNorm does on CPU tensors in this (gloo) process group."""
    layer = torch.nn.SyncBatchNorm(4).train()
    try:
        layer(torch.randn(2, 4, 3, 3))
        result = 'ok'
    except Exception as e:  # recorded, the test asserts on it
        result = f'{type(e).__name__}: {e}'
    with open(osp.join(out_dir, f'syncbn_w{get_world_size()}_r{get_rank()}.json'), 'w') as f:
        json.dump(dict(world=get_world_size(), backend=torch.distributed.get_backend(),
                       result=result), f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir')
    parser.add_argument('--runs', default=','.join(RUNS),
                        help=f'comma-separated subset of {sorted(RUNS)}')
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--global-batch', type=int, default=4)
    args = parser.parse_args()
    unknown = set(args.runs.split(',')) - set(RUNS)
    if unknown:
        parser.error(f'unknown --runs {sorted(unknown)}; choose from {sorted(RUNS)}')
    torch.set_num_threads(1)
    # quiet: init_weights reports every parameter at INFO level
    MMLogger.get_instance('ddp_cmid_worker', log_level='WARNING')
    init_dist('pytorch')  # gloo without CUDA
    for name in args.runs.split(','):
        run(name, args.steps, args.global_batch, args.out_dir)
    probe_syncbn(args.out_dir)
    release_distributed()


if __name__ == '__main__':
    main()
