"""tools' CPU-safe distributed launch, with two real processes on loopback (gloo)."""
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason='tests the CPU-only path')
def test_pytorch_launcher_on_cpu_two_ranks(tmp_path):
    worker = osp.join(osp.dirname(__file__), 'dist_worker.py')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
           f'--master_port={_free_port()}', '--master_addr=127.0.0.1', worker, str(tmp_path)]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outs = [json.load(open(tmp_path / f'rank{r}.json')) for r in range(2)]
    for r, out in enumerate(outs):
        assert out['rank'] == r and out['world'] == 2
        assert out['sum'] == 3.0  # 1 + 2 over both ranks
        assert out['backend'] == 'gloo'  # nccl in the config, no CUDA here
        assert out['wrapper'] == 'DeviceAgnosticDDP'
    # d(sum(Wx+b))/dW = sum of inputs = 3 per weight, identical (averaged) on both ranks.
    assert outs[0]['grad'] == outs[1]['grad'] == [[3.0, 3.0]]
