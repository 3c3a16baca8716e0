"""A real single-node Slurm cluster on loopback for tests (Debian's slurm-wlm 22.05 + munge).

    with SlurmCluster() as cluster:          # or the ``slurm_cluster`` pytest fixture
        subprocess.run(['srun', '-n', '2', 'hostname'], env=cluster.env)

Everything lives in a fresh temporary directory: a munge key and socket, ``slurm.conf``
(reached through ``SLURM_CONF``, no /etc file is touched), ``gres.conf`` with 8 fake GPUs
(symlinks to /dev/null, so ``--gres=gpu:N`` works as on a GPU partition), state, spool, logs.
The daemons ``munged``, ``slurmctld`` and ``slurmd`` run in the foreground as children of this
process; their PIDs are recorded, and :meth:`SlurmCluster.stop` (called on leaving the
``with`` block, also when its body raises) cancels the cluster's jobs and sends SIGTERM to
exactly those PIDs — SIGKILL after a timeout — and treats a zombie as stopped. Nothing is
ever killed by name. All traffic stays on 127.0.0.1 (``NodeAddr``, ``SlurmctldHost``).
Comments below name the failure behind the less obvious settings.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Dict, List, Optional

import pytest

#: Daemons and clients a cluster needs (tools/install_test_services.sh installs them).
REQUIRED_PROGRAMS = ('munged', 'mungekey', 'slurmctld', 'slurmd', 'srun', 'sinfo', 'squeue',
                     'scancel', 'scontrol')
_SBIN_PATH = os.pathsep.join([os.environ.get('PATH', ''), '/usr/sbin', '/sbin'])


def find_program(name: str) -> Optional[str]:
    """Path of ``name`` on PATH or in /usr/sbin, /sbin (not on a normal user's PATH)."""
    return shutil.which(name, path=_SBIN_PATH)


def unavailable_reason() -> Optional[str]:
    """Why a cluster cannot be started here, or None when it can."""
    missing = [p for p in REQUIRED_PROGRAMS if find_program(p) is None]
    if missing:
        return (f'Slurm/munge not installed (missing: {", ".join(missing)}); install them with '
                '`sudo bash tools/install_test_services.sh` or '
                '`CMID_TEST_SERVICES=1 bash tools/setup_env.sh`')
    if os.geteuid() != 0:
        return ('the test Slurm cluster runs slurmd, which must be root to start job steps; '
                f'running as uid {os.geteuid()}')
    return None


def pid_alive(pid: int) -> bool:
    """True while ``pid`` is a running process; a zombie (state Z/X) counts as stopped."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: fall back to signal 0 (cannot see zombies)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    # "pid (comm) S ...": comm may contain spaces or ')', the state follows the last ')'.
    return stat[stat.rindex(')') + 2] not in 'ZX'


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _tail(path: str, n: int = 25) -> str:
    try:
        with open(path, errors='replace') as f:
            return ''.join(f.readlines()[-n:])
    except OSError as e:
        return f'<{path} unreadable: {e}>'


# slurm.conf settings of every test cluster (one node here, several in slurm_multinode.py):
# no cgroups, accounting or mail; a node that was down comes back by itself; a killed job
# step gets 5 s between SIGTERM and SIGKILL; config_overrides lets a node advertise more
# CPUs than the machine has
SHARED_SETTINGS = """\
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
ReturnToService=2
KillWait=5
MinJobAge=30
SlurmdParameters=config_overrides
"""


class SlurmClusterError(RuntimeError):
    """The cluster could not be started; the message carries the daemon log tails."""


class SlurmCluster:
    """One-node Slurm cluster on loopback; a context manager (see the module docstring).

    Args:
        cpus: CPUs the node advertises (``SlurmdParameters=config_overrides`` lets it exceed
            the hardware; asking srun for more than advertised would make it wait forever).
        gpus: fake GPUs the node declares as GRES ``gpu``.
        partition: name of the single (default) partition.
        start_timeout: seconds to wait for the node to be ``idle`` in ``sinfo``.
        stop_timeout: seconds each daemon gets after SIGTERM before SIGKILL.
        cred_expire: job-step credential lifetime in seconds (Slurm's default: 120). A
            requeued job cannot start again before it has passed (measured: ~158 s with the
            default); tests that requeue set it low.
        sched_interval: seconds between the main scheduler's passes (Slurm's default: 60,
            with a backfill pass every 30 s); with 1 a requeued job starts again about
            ``cred_expire`` + 1 s after it ended (measured: ~6 s instead of ~27 s).
    """

    DAEMONS = ('munged', 'slurmctld', 'slurmd')  # start order; stopped in reverse

    def __init__(self, cpus: int = 8, gpus: int = 8, partition: str = 'debug',
                 start_timeout: float = 30.0, stop_timeout: float = 10.0,
                 cred_expire: Optional[int] = None,
                 sched_interval: Optional[int] = None) -> None:
        self.cpus, self.gpus, self.partition = cpus, gpus, partition
        self.cred_expire, self.sched_interval = cred_expire, sched_interval
        self.start_timeout, self.stop_timeout = start_timeout, stop_timeout
        self.node = socket.gethostname().split('.')[0]  # `hostname -s`
        self.root: Optional[str] = None
        self.pids: Dict[str, int] = {}
        self.stop_report: Dict[str, str] = {}
        self._procs: Dict[str, subprocess.Popen] = {}

    # ------------------------------------------------------------------ paths / environment
    def path(self, *parts: str) -> str:
        assert self.root is not None, 'the cluster has not been started'
        return os.path.join(self.root, *parts)

    @property
    def conf(self) -> str:
        return self.path('etc', 'slurm.conf')

    @property
    def env(self) -> Dict[str, str]:
        """Environment for Slurm clients (srun, sbatch, sinfo, ...) talking to this cluster.

        SLURM_* variables of an outer Slurm job are dropped so srun does not think it already
        is inside an allocation.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith('SLURM_')}
        env['SLURM_CONF'] = self.conf
        env['PATH'] = _SBIN_PATH
        return env

    def log_path(self, daemon: str) -> str:
        return self.path('log', f'{daemon}.log')

    def logs(self, n: int = 25) -> str:
        """The last ``n`` lines of each daemon's log (for assertion messages)."""
        if self.root is None:
            return '<cluster not started>'
        return '\n'.join(f'--- {d} ({self.log_path(d)}) ---\n{_tail(self.log_path(d), n)}'
                         for d in self.DAEMONS)

    def client(self, *args: str, timeout: float = 10.0) -> subprocess.CompletedProcess:
        """Run a Slurm client command (e.g. ``'sinfo', '-h'``) against this cluster."""
        return subprocess.run(list(args), env=self.env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)

    # ------------------------------------------------------------------ start
    def start(self) -> 'SlurmCluster':
        reason = unavailable_reason()
        if reason:
            raise SlurmClusterError(reason)
        # Short path under /tmp: the munge socket path must fit in a sockaddr_un (108 bytes).
        self.root = tempfile.mkdtemp(prefix='cmid-slurm-', dir='/tmp')
        try:
            self._write_files()
            self._start_munged()
            self._spawn('slurmctld', ['slurmctld', '-D', '-c', '-i', '-f', self.conf])
            self._spawn('slurmd', ['slurmd', '-D', '-f', self.conf, '-N', self.node])
            self._wait_idle()
        except BaseException:
            self.stop()
            raise
        return self

    def _write_files(self) -> None:
        # munged insists that every directory on the socket path is searchable by all (755)
        # and that the key is private (600).
        os.chmod(self.root, 0o755)
        for sub in ('munge', 'etc', 'log', 'state', 'spool', 'run', 'fakegpu'):
            os.makedirs(self.path(sub), mode=0o755)
        for i in range(self.gpus):  # plain files or no files put the node in INVAL/DRAIN
            os.symlink('/dev/null', self.path('fakegpu', f'nvidia{i}'))
        key = self.path('munge', 'munge.key')
        subprocess.run([find_program('mungekey'), '-c', '-k', key], check=True,
                       capture_output=True, timeout=30)
        os.chmod(key, 0o600)

        self.ctld_port, self.slurmd_port = free_port(), free_port()
        gres = f'Gres=gpu:{self.gpus} ' if self.gpus else ''
        cred = f',cred_expire={self.cred_expire}' if self.cred_expire else ''
        conf = f"""\
# Written by tests/integration/slurm_cluster.py: a one-node test cluster on 127.0.0.1.
ClusterName=cmidtest
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={self.ctld_port}
SlurmdPort={self.slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.path('munge', 'munge.socket.2')}{cred}
StateSaveLocation={self.path('state')}
SlurmdSpoolDir={self.path('spool')}
SlurmctldPidFile={self.path('run', 'slurmctld.pid')}
SlurmdPidFile={self.path('run', 'slurmd.pid')}
SlurmctldLogFile={self.log_path('slurmctld')}
SlurmdLogFile={self.log_path('slurmd')}
{SHARED_SETTINGS}GresTypes=gpu
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} {gres}State=UNKNOWN
PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
"""
        if self.sched_interval:
            conf += f'SchedulerParameters=sched_interval={self.sched_interval}\n'
        with open(self.conf, 'w') as f:
            f.write(conf)
        with open(self.path('etc', 'gres.conf'), 'w') as f:  # read from slurm.conf's dir
            if self.gpus:
                f.write(f'NodeName={self.node} Name=gpu '
                        f'File={self.path("fakegpu", "nvidia")}[0-{self.gpus - 1}]\n')

    def _spawn(self, name: str, argv: List[str]) -> None:
        """Start a daemon in the foreground, output appended to its log; record its PID."""
        argv = [find_program(argv[0])] + argv[1:]
        with open(self.log_path(name), 'ab') as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=self.env)
        self._procs[name] = proc
        self.pids[name] = proc.pid

    def _start_munged(self) -> None:
        sock = self.path('munge', 'munge.socket.2')
        self._spawn('munged', [
            'munged', '--foreground', f'--socket={sock}',
            f'--key-file={self.path("munge", "munge.key")}',
            f'--pid-file={self.path("run", "munged.pid")}',
            f'--log-file={self.path("log", "munged.file.log")}',
            f'--seed-file={self.path("munge", "munged.seed")}'])
        deadline = time.monotonic() + self.start_timeout
        while not os.path.exists(sock):
            self._check_running('munged')
            if time.monotonic() > deadline:
                raise SlurmClusterError(f'munged did not create its socket {sock} within '
                                        f'{self.start_timeout:.0f} s.\n{self.logs()}')
            time.sleep(0.05)

    def _check_running(self, *names: str) -> None:
        for name in names or tuple(self._procs):
            code = self._procs[name].poll()
            if code is not None:
                raise SlurmClusterError(f'{name} (pid {self.pids[name]}) exited with code '
                                        f'{code} while the cluster was starting; its log:\n'
                                        f'{_tail(self.log_path(name), 40)}')

    def _wait_idle(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        state = ''
        while True:
            self._check_running()
            try:
                res = self.client('sinfo', '-h', '-p', self.partition, '-o', '%t', timeout=5)
                state = (res.stdout + res.stderr).strip()
            except subprocess.TimeoutExpired:
                state = '<sinfo timed out>'
            if state == 'idle':
                return
            if time.monotonic() > deadline:
                raise SlurmClusterError(
                    f'node {self.node} not idle after {self.start_timeout:.0f} s '
                    f'(sinfo says {state!r}); config {self.conf}.\n{self.logs()}')
            time.sleep(0.2)

    # ------------------------------------------------------------------ stop
    def alive(self) -> Dict[str, int]:
        """The recorded daemons that are still running (zombies count as stopped)."""
        for proc in self._procs.values():
            proc.poll()  # reap our own children that have exited
        return {name: pid for name, pid in self.pids.items() if pid_alive(pid)}

    def _cancel_jobs(self) -> None:
        """Cancel this cluster's own jobs so their steps end before the daemons do."""
        try:
            res = self.client('squeue', '-h', '-o', '%i', timeout=5)
            ids = res.stdout.split()
            if not ids:
                return
            self.client('scancel', *ids, timeout=5)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.client(
                    'squeue', '-h', '-o', '%i', timeout=5).stdout.split():
                time.sleep(0.2)
        except (OSError, subprocess.SubprocessError):
            pass  # the daemons are stopped next in any case

    def _stop_one(self, name: str) -> str:
        proc, pid = self._procs[name], self.pids[name]
        if not pid_alive(pid) or proc.poll() is not None:
            return 'already stopped'
        proc.send_signal(signal.SIGTERM)  # a no-op once Popen has reaped it: never a reused pid
        for sig, wait in (('SIGTERM', self.stop_timeout), ('SIGKILL', 5.0)):
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                proc.poll()
                if not pid_alive(pid):
                    return f'stopped by {sig}'
                time.sleep(0.05)
            if sig == 'SIGTERM':
                proc.send_signal(signal.SIGKILL)
        return 'STILL RUNNING after SIGKILL'

    def stop(self) -> Dict[str, str]:
        """Stop exactly the daemons this object started; returns what happened to each."""
        if 'slurmctld' in self._procs and 'slurmctld' in self.alive():
            self._cancel_jobs()
        for name in reversed(self.DAEMONS):
            if name in self._procs:
                self.stop_report[name] = self._stop_one(name)
        for proc in self._procs.values():
            try:
                proc.wait(timeout=1)  # reap, so no zombie of ours outlives the cluster
            except subprocess.TimeoutExpired:
                pass
        if self.root and not self.alive():
            shutil.rmtree(self.root, ignore_errors=True)
        return self.stop_report

    def __enter__(self) -> 'SlurmCluster':
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@pytest.fixture
def slurm_cluster():
    """A started :class:`SlurmCluster`, torn down after the test even if the test fails;
    skips (with the reason) where Slurm or munge is not installed."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with SlurmCluster() as cluster:
        yield cluster
