"""Run by torch.distributed.run in test_dist_launch.py: CPU launch + DDP wrap + all_reduce."""
import json
import os
import sys

import torch
from mmengine.config import Config
from mmengine.dist import all_reduce, get_rank, get_world_size

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..'))
from cmid_mm.utils import (DeviceAgnosticDDP, prepare_cpu_distributed,  # noqa: E402
                           release_distributed)

cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl'))))
prepare_cpu_distributed(cfg, 'pytorch')
t = torch.tensor([float(get_rank() + 1)])
all_reduce(t)  # sum
model = DeviceAgnosticDDP(torch.nn.Linear(2, 1), device_ids=[int(os.environ['LOCAL_RANK'])])
model(torch.ones(3, 2)).sum().backward()  # gradients are all-reduced by DDP
out = dict(rank=get_rank(), world=get_world_size(), sum=t.item(),
           backend=cfg.env_cfg.dist_cfg.backend, wrapper=cfg.model_wrapper_cfg.type,
           grad=model.module.weight.grad.tolist())
with open(os.path.join(sys.argv[1], f'rank{get_rank()}.json'), 'w') as f:
    json.dump(out, f)
del model
release_distributed()
assert not torch.distributed.is_initialized()
