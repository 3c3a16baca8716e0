"""MoCo-v2 InfoNCE with a FIFO queue of teacher keys (method.md §5.2)."""
from typing import List, Optional, Union

import torch
import torch.nn.functional as F
from mmengine.dist import all_gather
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch.autograd.function import once_differentiable

from cmid_mm.models.utils.precision import at_least_fp32


class _QueueInfoNCE(torch.autograd.Function):
    """InfoNCE of unit queries against their key and a queue, gradient computed up front.

    ``loss = mean_i(logsumexp(l_i) - l_i0)`` with ``l_i = [q_i . k_i, q_i . queue^T] / T``. Its
    gradient with respect to the unit query is ``(sum_j p_ij c_j - k_i) / (T * B)`` over the
    candidates ``c = [k_i, queue]`` and ``p = softmax(l_i)``, i.e. ``((p_i0 - 1) k_i +
    p_i,neg @ queue) / (T * B)``. Computing it in the forward pass means autograd keeps no
    reference to the queue: the algorithm may enqueue in place before ``backward()`` without
    copying the whole queue first (a 64 MB copy per call at 65536 x 256), and the queue is read
    twice per call instead of three times.
    """

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor,
                temperature: float) -> torch.Tensor:
        logits = torch.cat([(q * k).sum(dim=1, keepdim=True), q @ queue.t()], dim=1)
        logits = logits / temperature
        lse = torch.logsumexp(logits, dim=1, keepdim=True)
        loss = (lse[:, 0] - logits[:, 0]).mean()
        prob = (logits - lse).exp_()
        grad_q = (prob[:, :1] - 1) * k + prob[:, 1:] @ queue
        ctx.save_for_backward(grad_q.div_(temperature * q.shape[0]))
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss: torch.Tensor):
        grad_q, = ctx.saved_tensors
        return grad_loss * grad_q, None, None, None


@MODELS.register_module()
class QueueContrastiveHead(BaseModule):
    """InfoNCE of student queries against one positive teacher key and a queue of negatives.

    ``logits = [q . k, q . queue^T] / temperature`` with L2-normalised ``q`` and ``k``,
    cross-entropy with target 0. The queue and its write pointer are buffers (saved in
    checkpoints).

    Args:
        feat_dim (int): key dimension D (output of the global projector).
        queue_len (int): number of keys K in the queue; must be a multiple of the number of
            keys enqueued at once (batch size x world size).
        temperature (float): softmax temperature.
        reference_queue_init (bool): initialise the queue as the reference code does (each
            feature column normalised over the K keys, method.md §9) instead of each key to unit
            norm. Only matters until the queue has been refilled.
        init_cfg (dict or list[dict], optional): mmengine initialisation config.
    """

    def __init__(self,
                 feat_dim: int = 256,
                 queue_len: int = 65536,
                 temperature: float = 0.2,
                 reference_queue_init: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.temperature = temperature
        queue = F.normalize(torch.randn(queue_len, feat_dim),
                            dim=0 if reference_queue_init else 1)
        self.register_buffer('queue', queue)
        self.register_buffer('queue_ptr', torch.zeros(1, dtype=torch.long))

    def _check(self, name: str, x: torch.Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.queue.shape[1]:
            raise ValueError(f'{name} must be (B, feat_dim={self.queue.shape[1]}); got '
                             f'{tuple(x.shape)}: set feat_dim to the projector output size')

    def loss(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """InfoNCE loss.

        Rows are independent: the queries of several pairs of views can be stacked into one
        call (one pass over the queue); the result is then the mean over all rows.

        Args:
            q: (B, D) queries (student projections); gradients flow through them.
            k: (B, D) positive keys (teacher projections); detached.

        Returns:
            Scalar loss, in float32 at least (also under autocast). :meth:`enqueue` may be
            called before ``backward()``: the gradient uses the queue as it was here.
        """
        self._check('q', q)
        self._check('k', k)
        with torch.autocast(device_type=q.device.type, enabled=False):
            q = F.normalize(at_least_fp32(q), dim=1)
            k = F.normalize(at_least_fp32(k.detach()).to(q.dtype), dim=1)
            return _QueueInfoNCE.apply(q, k, self.queue.to(q.dtype), self.temperature)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Normalise ``keys``, gather them from all ranks and write them at the pointer.

        Args:
            keys: (B, D) teacher keys of this rank. Under torch.distributed, the keys of all
                ranks are concatenated in rank order (gathered once).
        """
        self._check('keys', keys)
        # normalised in float32 at least, as loss() normalises them (keys from autocast)
        keys = torch.cat(all_gather(F.normalize(at_least_fp32(keys), dim=1)), dim=0)
        num, queue_len = keys.shape[0], self.queue.shape[0]
        if queue_len % num:
            raise ValueError(f'queue_len={queue_len} is not a multiple of the number of keys '
                             f'enqueued at once ({num} = batch size x world size): choose a '
                             'queue_len divisible by it, or change the batch size')
        ptr = int(self.queue_ptr)
        index = torch.arange(ptr, ptr + num, device=self.queue.device) % queue_len
        self.queue[index] = keys.to(self.queue.dtype)
        self.queue_ptr[0] = (ptr + num) % queue_len
