"""PreemptionHook._requeue with a stand-in ``scontrol`` on PATH (a real process).

``scontrol requeue`` makes Slurm send SIGTERM to every process of the job, the scontrol
process included; a CI run showed it dying of it and the hook reporting "not requeued" for a
job Slurm had requeued. The stand-in does what Slurm does to it: it gets SIGTERM before it
exits.
"""
import logging
import os
import stat

import pytest

from cmid_mm.engine.hooks.preemption_hook import PreemptionHook


class _Runner:

    def __init__(self):
        self.records = []
        self.logger = logging.getLogger('test_preemption_requeue')
        self.logger.handlers[:] = []
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        handler = logging.Handler()
        handler.emit = lambda r: self.records.append((r.levelname, r.getMessage()))
        self.logger.addHandler(handler)


def _fake_scontrol(tmp_path, monkeypatch, body):
    path = tmp_path / 'scontrol'
    path.write_text('#!/bin/bash\necho "$@" > "$(dirname "$0")/args"\n' + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv('PATH', f'{tmp_path}{os.pathsep}{os.environ["PATH"]}')
    monkeypatch.setenv('SLURM_JOB_ID', '4242')
    return tmp_path / 'args'


def test_requeue_survives_the_sigterm_slurm_sends_the_job(tmp_path, monkeypatch):
    args = _fake_scontrol(tmp_path, monkeypatch, 'kill -TERM $$\nsleep 0.2\nexit 0\n')
    runner = _Runner()
    PreemptionHook()._requeue(runner)
    assert args.read_text().split() == ['requeue', '4242']
    assert runner.records == [
        ('WARNING', 'PreemptionHook: requeued Slurm job 4242 (`scontrol requeue 4242`)')]


@pytest.mark.parametrize('body, detail', [
    ('echo "Requested operation not supported on this job" >&2\nexit 1\n',
     'exit status 1: Requested operation not supported on this job'),
    ('exit 3\n', 'exit status 3: no output'),
])
def test_failed_requeue_names_the_status_and_what_to_do(tmp_path, monkeypatch, body, detail):
    _fake_scontrol(tmp_path, monkeypatch, body)
    runner = _Runner()
    PreemptionHook()._requeue(runner)
    [(level, msg)] = runner.records
    assert level == 'ERROR'
    assert msg.startswith(f'PreemptionHook: `scontrol requeue 4242` failed ({detail}); the job '
                          'is not requeued: submit it again')
    assert 'sbatch --requeue' in msg


def test_no_requeue_outside_slurm(monkeypatch):
    monkeypatch.delenv('SLURM_JOB_ID', raising=False)
    runner = _Runner()
    PreemptionHook()._requeue(runner)
    assert runner.records == [('INFO', 'PreemptionHook: not in a Slurm job; not requeued')]
