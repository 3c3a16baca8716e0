"""tools/slurm_train.sh on a real 2-node Slurm cluster on one machine (slurm_multinode.py:
each node its own network and UTS namespace with its own slurmd, joined by veth pairs to a
bridge on 10.77.0.0/24): a CMID pretraining job with one rank per node (gloo over the veth
links), checked as the one-node job of test_slurm.py is, and the cluster (daemons, namespaces,
links) gone afterwards.

Skips where Slurm/munge, iproute2 or util-linux are missing or we are not root.
"""
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

import cmid_mm  # noqa: F401
from tests.integration.slurm_cluster import free_port, pid_alive
from tests.integration.slurm_multinode import (BRIDGE, NODE_IFNAME, MultiNodeSlurmCluster,
                                               multinode_unavailable_reason)

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CONFIG = 'configs/cmid_demo_resnet18_rs-sample.py'
JOB_TIMEOUT = 300
BATCH, RANKS, IMAGES, VIEWS = 2, 2, 8, 2

pytestmark = pytest.mark.skipif(multinode_unavailable_reason() is not None,
                                reason=str(multinode_unavailable_reason()))


def _netns_and_links():
    links = subprocess.run(['ip', '-o', 'link', 'show'], capture_output=True,
                           text=True).stdout
    names = re.findall(r'^\d+: ([^:@]+)', links, flags=re.M)
    netns = subprocess.run(['ip', 'netns', 'list'], capture_output=True, text=True).stdout
    return ([n for n in names if n.startswith(('cmidbr', 'cmidveth'))],
            [line.split()[0] for line in netns.splitlines() if line.startswith('cmidns')])


def test_two_node_job_trains_one_rank_per_node(tmp_path):
    work_dir = tmp_path / 'work'
    cluster = MultiNodeSlurmCluster(nodes=2)
    with cluster:
        pids = dict(cluster.pids)
        env = dict(cluster.env, GPUS=str(RANKS), GPUS_PER_NODE='1', CPUS_PER_TASK='1',
                   GRES='', PYTHON=sys.executable, SRUN_ARGS='--label', OMP_NUM_THREADS='1',
                   # rank 0 runs on the first node; gloo uses the node's veth end
                   MASTER_ADDR=cluster.addrs[0], MASTER_PORT=str(free_port()),
                   GLOO_SOCKET_IFNAME=NODE_IFNAME)
        cmd = ['timeout', str(JOB_TIMEOUT), 'bash', 'tools/slurm_train.sh', 'debug',
               'cmid_mn', CONFIG, str(work_dir), '--cfg-options',
               f'train_dataloader.batch_size={BATCH}', 'train_dataloader.num_workers=0',
               f'train_dataloader.dataset.indices={IMAGES}', 'train_cfg.max_epochs=1',
               'default_hooks.checkpoint.interval=1', 'default_hooks.logger.interval=1']
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=JOB_TIMEOUT + 30)
        report = (f'exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}\n'
                  f'{cluster.logs()}')
        assert proc.returncode == 0, report
        job = cluster.client('scontrol', 'show', 'job', '-o').stdout
        fields = dict(f.split('=', 1) for f in job.split() if '=' in f)
        # one task on each node (Slurm's view), each node a host of its own name
        assert (fields['NumNodes'], fields['NumTasks']) == ('2', '2'), fields
        assert fields['NodeList'] == 'cmidnode[1-2]', fields
        hosts = cluster.client('srun', '-N', '2', '-n', '2', '--label', 'sh', '-c',
                               f'hostname; ip -4 -o addr show {NODE_IFNAME}', timeout=60)
        assert sorted(re.findall(r'^(\d): (cmidnode\d)$', hosts.stdout, flags=re.M)) == \
            [('0', 'cmidnode1'), ('1', 'cmidnode2')], hosts.stdout + hosts.stderr
        assert f'inet {cluster.addrs[1]}/24' in hosts.stdout

        output = proc.stdout + proc.stderr
        rank0 = [line[3:] for line in output.splitlines() if line.startswith('0: ')]
        rank1 = [line[3:] for line in output.splitlines() if line.startswith('1: ')]
        assert rank0 and rank1, report
        assert not any('Traceback' in line for line in rank0 + rank1), report
        log0 = '\n'.join(rank0)
        assert 'Distributed launcher: slurm' in log0 and 'GPU number: 2' in log0, report
        steps = IMAGES // (RANKS * BATCH)
        assert f'Epoch(train) [1][{steps}/{steps}]' in log0, report
        ckpt = torch.load(work_dir / 'epoch_1.pth', map_location='cpu')
        queue_len = ckpt['state_dict']['global_head.queue'].shape[0]
        # the keys of both views of both ranks' batches entered the queue once per step
        assert int(ckpt['state_dict']['global_head.queue_ptr']) == \
            (steps * VIEWS * RANKS * BATCH) % queue_len == 16

    assert not any(pid_alive(p) for p in pids.values()), cluster.stop_report
    assert _netns_and_links() == ([], []), 'namespaces or links left behind'
    assert BRIDGE not in subprocess.run(['ip', 'link'], capture_output=True,
                                        text=True).stdout


def test_two_node_ddp_matches_the_one_node_guarantees(tmp_path):
    """ddp_cmid_worker.py (tiny Swin and ViT CMIDs, fixed global batch of 4, 3 steps) as 2
    Slurm tasks on 2 nodes, against 1 process: test_ddp.py's checks with its tolerances — each
    rank's queue keys enter once, student, teacher, centre and queue bitwise equal on both
    ranks, and the 2-rank step equals the 1-process step with twice the batch."""
    from tests.integration import test_ddp
    out = tmp_path / 'dumps'
    out.mkdir()
    with MultiNodeSlurmCluster(nodes=2) as cluster:
        env = dict(cluster.env, OMP_NUM_THREADS='1', MASTER_ADDR=cluster.addrs[0],
                   MASTER_PORT=str(free_port()), GLOO_SOCKET_IFNAME=NODE_IFNAME)
        worker = (f'RANK=$SLURM_PROCID WORLD_SIZE=$SLURM_NTASKS LOCAL_RANK=$SLURM_LOCALID '
                  f'exec {sys.executable} {test_ddp.WORKER} {out} --runs swin,vit '
                  f'--steps {test_ddp.STEPS} --global-batch {test_ddp.GLOBAL}')
        proc = subprocess.run(
            ['timeout', str(JOB_TIMEOUT), 'srun', '-N', '2', '-n', '2',
             '--ntasks-per-node=1', '--label', 'sh', '-c', worker], env=env,
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=JOB_TIMEOUT + 30)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:] + cluster.logs()
    test_ddp._torchrun(1, out, 'swin,vit')

    def load(run, world, rank=0):
        return torch.load(out / f'{run}_w{world}_r{rank}.pt', weights_only=False)

    for run in test_ddp.EXACT:
        test_ddp.test_queue_receives_each_rank_keys_exactly_once(load, run)
        test_ddp.test_student_teacher_centre_queue_bitwise_equal_across_ranks(load, run)
        test_ddp.test_two_ranks_equal_one_process_with_twice_the_batch(load, run)
