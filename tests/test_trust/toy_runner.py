"""A small real mmengine training run under ``SafeRunner`` for the trust tests: an MLP whose
middle weight is a 16 KB record (big enough to damage 4 KB inside it), 4 samples, batch 2."""
import itertools
import os

import torch
from mmengine.model import BaseModel
from torch import nn

from cmid_mm.engine import SafeRunner

_names = itertools.count()


class Net(BaseModel):

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(2, 64)
        self.wide = nn.Linear(64, 64)
        self.out = nn.Linear(64, 1)

    def forward(self, inputs, labels=None, mode='tensor'):
        pred = self.out(torch.relu(self.wide(torch.relu(self.hidden(torch.stack(inputs))))))
        if mode == 'loss':
            return dict(loss=((pred.squeeze(1) - torch.stack(labels))**2).mean())
        return pred


class Data(torch.utils.data.Dataset):

    def __len__(self):
        return 4

    def __getitem__(self, i):
        x = torch.rand(2, generator=torch.Generator().manual_seed(i))
        return dict(inputs=x, labels=x.sum())


def safe_runner(work_dir, max_iters, interval=2, hooks=(), **kwargs) -> SafeRunner:
    """Iteration-based run, SGD with momentum, a checkpoint every ``interval`` iterations."""
    torch.manual_seed(0)
    return SafeRunner(
        model=Net(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=Data(), sampler=dict(type='DefaultSampler', shuffle=False),
                              batch_size=2, num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=interval,
                                           by_epoch=False)),
        custom_hooks=list(hooks), default_scope='mmengine',
        experiment_name=f'trust_{os.getpid()}_{next(_names)}', **kwargs)
