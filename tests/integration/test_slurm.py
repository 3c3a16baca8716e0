"""tools/slurm_train.sh on a real one-node Slurm cluster on loopback (slurm_cluster.py): a
2-task CMID pretraining job through srun with the script's default ``--gres=gpu:N`` (fake
GPUs), and a failing job after which the cluster is still torn down.

Skips where Slurm/munge are not installed (tools/install_test_services.sh installs them;
``CMID_TEST_SERVICES=1 bash tools/setup_env.sh`` runs it) or where we are not root.
"""
import os
import os.path as osp
import subprocess
import sys
import time

import pytest
import torch

import cmid_mm  # noqa: F401  (allow-lists mmengine checkpoint globals for torch.load)
from tests.integration.slurm_cluster import (SlurmCluster, free_port, pid_alive,  # noqa: F401
                                             slurm_cluster, unavailable_reason)

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CONFIG = 'configs/cmid_demo_resnet18_rs-sample.py'
JOB_TIMEOUT = 240  # seconds; the job takes ~20 s on 2 idle cores
BATCH, RANKS, IMAGES, VIEWS = 2, 2, 8, 2


def _slurm_train(cluster, config, work_dir, *cfg_options):
    """``timeout N bash tools/slurm_train.sh debug cmid_test CONFIG WORK_DIR`` as a user runs
    it: 2 tasks on one node, GRES left at the script's default (gpu:2)."""
    env = dict(
        cluster.env, GPUS=str(RANKS), GPUS_PER_NODE=str(RANKS), CPUS_PER_TASK='1',
        PYTHON=sys.executable, SRUN_ARGS='--label',  # each output line starts with "RANK: "
        OMP_NUM_THREADS='1',
        # mmengine's slurm launcher would take the node's name and port 29500: stay on
        # loopback whatever the hostname resolves to, on a port no one else uses.
        MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()))
    env.pop('GRES', None)
    cmd = ['timeout', str(JOB_TIMEOUT), 'bash', 'tools/slurm_train.sh', 'debug', 'cmid_test',
           config, str(work_dir)]
    if cfg_options:
        cmd += ['--cfg-options', *cfg_options]
    proc = subprocess.run(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=JOB_TIMEOUT + 30)
    assert proc.returncode != 124, f'job timed out after {JOB_TIMEOUT} s:\n' + _report(
        proc, cluster)
    return proc


def _report(proc, cluster):
    return (f'exit {proc.returncode}\n--- stdout ---\n{proc.stdout[-3000:]}\n--- stderr ---\n'
            f'{proc.stderr[-5000:]}\n{cluster.logs()}')


def _rank_lines(output, rank):
    prefix = f'{rank}: '
    return [line[len(prefix):] for line in output.splitlines() if line.startswith(prefix)]


def _job_record(cluster, name, settle_s=30.0):
    """``scontrol show job -o`` fields of the job called ``name`` (sacct needs slurmdbd), once
    Slurm has finished cleaning it up (srun returns while the job is still COMPLETING)."""
    deadline = time.monotonic() + settle_s
    while True:
        res = cluster.client('scontrol', 'show', 'job', '-o')
        jobs = [dict(f.split('=', 1) for f in line.split() if '=' in f)
                for line in res.stdout.splitlines()]
        job = next((j for j in jobs if j.get('JobName') == name), None)
        assert job is not None, f'no job {name!r} in `scontrol show job`:\n{res.stdout}' \
            f'{res.stderr}'
        if job['JobState'] not in ('PENDING', 'CONFIGURING', 'RUNNING', 'COMPLETING') \
                or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def test_slurm_train_two_tasks_trains_both_ranks_and_checkpoints(slurm_cluster, tmp_path):
    work_dir = tmp_path / 'work'
    proc = _slurm_train(
        slurm_cluster, CONFIG, work_dir,
        f'train_dataloader.batch_size={BATCH}', 'train_dataloader.num_workers=0',
        f'train_dataloader.dataset.indices={IMAGES}', 'train_cfg.max_epochs=1',
        'default_hooks.checkpoint.interval=1', 'default_hooks.logger.interval=1')
    report = _report(proc, slurm_cluster)
    assert proc.returncode == 0, report

    # Slurm ran it as asked: 2 tasks, the default GRES path, finished cleanly.
    job = _job_record(slurm_cluster, 'cmid_test')
    assert (job['JobState'], job['ExitCode'], job['NumTasks']) == ('COMPLETED', '0:0', '2'), job
    assert job['TresPerNode'] == f'gres:gpu:{RANKS}', job

    # Both tasks ran train.py as their own rank of one 2-process gloo job.
    output = proc.stdout + proc.stderr
    rank0, rank1 = _rank_lines(output, 0), _rank_lines(output, 1)
    assert rank0 and rank1, report
    if not torch.cuda.is_available():
        for lines in (rank0, rank1):  # cmid_mm's CPU launch says so on every rank
            assert any("'gloo'" in line for line in lines), report
    assert not any('Traceback' in line for line in rank0 + rank1), report
    # Rank 0 logs: Slurm launcher, world size 2 (mmengine's "GPU number" is the world size),
    # and 8 images / (2 ranks x batch 2) = 2 steps in the epoch (a lone rank would make 4).
    log0 = '\n'.join(rank0)
    assert 'Distributed launcher: slurm' in log0 and 'GPU number: 2' in log0, report
    steps = IMAGES // (RANKS * BATCH)
    assert f'Epoch(train) [1][{steps}/{steps}]' in log0, report
    assert f'Epoch(train) [1][{steps + 1}/' not in log0, report

    # Checkpoint written after the epoch; the MoCo queue took the keys of both views of
    # every rank's batch at each step (gathered across ranks: 16, a lone rank would give 8).
    ckpt_path = work_dir / 'epoch_1.pth'
    assert ckpt_path.is_file(), f'{os.listdir(work_dir)}\n{report}'
    ckpt = torch.load(ckpt_path, map_location='cpu')
    assert (ckpt['meta']['epoch'], ckpt['meta']['iter']) == (1, steps)
    queue_len = ckpt['state_dict']['global_head.queue'].shape[0]
    assert int(ckpt['state_dict']['global_head.queue_ptr']) == \
        (steps * VIEWS * RANKS * BATCH) % queue_len == 16
    assert (work_dir / 'last_checkpoint').read_text().strip() == str(ckpt_path)


@pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))
def test_failing_job_exits_nonzero_and_cluster_is_torn_down(tmp_path):
    missing = 'configs/does_not_exist.py'

    class BodyFailed(Exception):
        pass

    cluster = SlurmCluster()
    with pytest.raises(BodyFailed):
        with cluster:
            pids = dict(cluster.pids)
            assert set(pids) == {'munged', 'slurmctld', 'slurmd'}
            assert all(pid_alive(pid) for pid in pids.values())
            root = cluster.root
            proc = _slurm_train(cluster, missing, tmp_path / 'work')
            report = _report(proc, cluster)
            assert proc.returncode != 0, report
            assert missing in proc.stdout + proc.stderr, report  # the error names the file
            job = _job_record(cluster, 'cmid_test')
            assert job['JobState'] == 'FAILED', job
            assert job['ExitCode'] != '0:0', job
            raise BodyFailed  # the teardown must also run when the test body raises

    assert cluster.alive() == {}, cluster.stop_report
    assert not any(pid_alive(pid) for pid in pids.values()), cluster.stop_report
    assert set(cluster.stop_report) == {'munged', 'slurmctld', 'slurmd'}
    assert all(v.startswith('stopped by') for v in cluster.stop_report.values()), \
        cluster.stop_report
    assert not osp.exists(root)
