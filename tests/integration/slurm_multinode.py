"""A Slurm cluster of several nodes on one machine, for tests.

Each node is a network namespace of its own (``ip netns``) with its own host name (a UTS
namespace, ``unshare --uts``), joined by a veth pair to a bridge in the test's namespace, on
the private subnet 10.77.0.0/24: the bridge (slurmctld, the clients) is 10.77.0.1, node *i*
10.77.0.(i+1). Each node runs its own ``slurmd``; munge's socket is a file, reached from every
namespace. Everything the cluster creates (namespaces, bridge, veth pairs, daemons by PID,
the temporary directory) is removed on leaving the ``with`` block, also when it raises.
"""
import os
import subprocess
from typing import List, Optional

from tests.integration.slurm_cluster import (SHARED_SETTINGS, SlurmCluster, SlurmClusterError,
                                             find_program, free_port)

SUBNET = '10.77.0'
BRIDGE = 'cmidbr0'
NODE_IFNAME = 'cmid0'  # the node's end of its veth pair (GLOO_SOCKET_IFNAME in the tasks)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(['ip', *args], capture_output=True, text=True, timeout=30)
    if check and res.returncode != 0:
        raise SlurmClusterError(f'`ip {" ".join(args)}` failed: {res.stderr.strip()}')
    return res


def multinode_unavailable_reason() -> Optional[str]:
    from tests.integration.slurm_cluster import unavailable_reason
    reason = unavailable_reason()
    if reason:
        return reason
    for prog in ('ip', 'unshare', 'nsenter'):
        if find_program(prog) is None:
            return f'{prog} not installed (iproute2 / util-linux)'
    return None


class MultiNodeSlurmCluster(SlurmCluster):
    """``nodes`` slurmd's, one per network + UTS namespace; see the module docstring."""

    def __init__(self, nodes: int = 2, cpus: int = 4, **kwargs) -> None:
        super().__init__(cpus=cpus, gpus=0, **kwargs)
        self.names = [f'cmidnode{i + 1}' for i in range(nodes)]
        self.addrs = [f'{SUBNET}.{i + 2}' for i in range(nodes)]
        self.controller_addr = f'{SUBNET}.1'
        self._netns: List[str] = []
        self._links: List[str] = []

    # ------------------------------------------------------------------ network
    def _make_network(self) -> None:
        _ip('link', 'add', BRIDGE, 'type', 'bridge')
        self._links.append(BRIDGE)
        _ip('addr', 'add', f'{self.controller_addr}/24', 'dev', BRIDGE)
        _ip('link', 'set', BRIDGE, 'up')
        for i, (name, addr) in enumerate(zip(self.names, self.addrs)):
            ns, host_end = f'cmidns{i + 1}', f'cmidveth{i + 1}'
            _ip('netns', 'add', ns)
            self._netns.append(ns)
            _ip('link', 'add', host_end, 'type', 'veth', 'peer', 'name', NODE_IFNAME,
                'netns', ns)
            self._links.append(host_end)
            _ip('link', 'set', host_end, 'master', BRIDGE, 'up')
            _ip('netns', 'exec', ns, 'ip', 'addr', 'add', f'{addr}/24', 'dev', NODE_IFNAME)
            _ip('netns', 'exec', ns, 'ip', 'link', 'set', NODE_IFNAME, 'up')
            _ip('netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up')

    def _remove_network(self) -> None:
        for ns in self._netns:
            _ip('netns', 'del', ns, check=False)
        for link in reversed(self._links):
            if _ip('link', 'show', link, check=False).returncode == 0:
                _ip('link', 'del', link, check=False)
        self._netns, self._links = [], []

    # ------------------------------------------------------------------ start / stop
    def start(self) -> 'MultiNodeSlurmCluster':
        try:
            self._make_network()
        except BaseException:
            self._remove_network()
            raise
        import tempfile
        self.root = tempfile.mkdtemp(prefix='cmid-slurm-mn-', dir='/tmp')
        try:
            self._write_files()
            self._start_munged()
            self._spawn('slurmctld', ['slurmctld', '-D', '-c', '-i', '-f', self.conf])
            for ns, name in zip(self._netns, self.names):
                self._spawn_in(ns, name)
            self._wait_idle()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn_in(self, ns: str, name: str) -> None:
        key = f'slurmd-{name}'
        log = self.path('log', f'{key}.log')
        # nsenter, not `ip netns exec`: the latter mounts a fresh /sys, without the
        # /sys/fs/cgroup slurmd 22.05 initialises its cgroup plugin from ("No filesystem
        # mounted on /sys/fs/cgroup ... slurmd initialization failed").
        argv = [find_program('nsenter'), f'--net=/var/run/netns/{ns}', find_program('unshare'),
                '--uts', 'sh', '-c',
                f'hostname {name} && exec {find_program("slurmd")} -D -f {self.conf} -N {name}']
        with open(log, 'ab') as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=self.env)
        self._procs[key] = proc
        self.pids[key] = proc.pid

    @property
    def daemon_names(self):
        return ['munged', 'slurmctld'] + [f'slurmd-{n}' for n in self.names]

    def log_path(self, daemon: str) -> str:
        return self.path('log', f'{daemon}.log')

    def logs(self, n: int = 25) -> str:
        if self.root is None:
            return '<cluster not started>'
        from tests.integration.slurm_cluster import _tail
        return '\n'.join(f'--- {d} ---\n{_tail(self.log_path(d), n)}'
                         for d in self.daemon_names)

    def stop(self):
        if 'slurmctld' in self._procs and 'slurmctld' in self.alive():
            self._cancel_jobs()
        for name in reversed(self.daemon_names):
            if name in self._procs:
                self.stop_report[name] = self._stop_one(name)
        for proc in self._procs.values():
            try:
                proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        self._remove_network()
        if self.root and not self.alive():
            import shutil
            shutil.rmtree(self.root, ignore_errors=True)
        return self.stop_report

    def _wait_idle(self) -> None:
        import time
        deadline = time.monotonic() + self.start_timeout
        while True:
            self._check_running()
            res = self.client('sinfo', '-h', '-N', '-o', '%N %t', timeout=5)
            states = dict(line.split() for line in res.stdout.splitlines() if line.strip())
            if states and all(states.get(n) == 'idle' for n in self.names):
                return
            if time.monotonic() > deadline:
                raise SlurmClusterError(f'nodes not idle after {self.start_timeout:.0f} s '
                                        f'(sinfo: {states or res.stderr}).\n{self.logs()}')
            time.sleep(0.2)

    def _write_files(self) -> None:
        os.chmod(self.root, 0o755)
        for sub in ('munge', 'etc', 'log', 'state', 'spool', 'run'):
            os.makedirs(self.path(sub), mode=0o755)
        for name in self.names:
            os.makedirs(self.path('spool', name), mode=0o755)
        key = self.path('munge', 'munge.key')
        subprocess.run([find_program('mungekey'), '-c', '-k', key], check=True,
                       capture_output=True, timeout=30)
        os.chmod(key, 0o600)
        self.ctld_port, self.slurmd_port = free_port(), free_port()
        nodes = '\n'.join(f'NodeName={n} NodeAddr={a} CPUs={self.cpus} State=UNKNOWN'
                          for n, a in zip(self.names, self.addrs))
        conf = f"""\
# Written by tests/integration/slurm_multinode.py: {len(self.names)} nodes in namespaces.
ClusterName=cmidmn
SlurmctldHost={self.node}({self.controller_addr})
SlurmctldPort={self.ctld_port}
SlurmdPort={self.slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.path('munge', 'munge.socket.2')}
StateSaveLocation={self.path('state')}
SlurmdSpoolDir={self.path('spool')}/%n
SlurmctldPidFile={self.path('run', 'slurmctld.pid')}
SlurmdPidFile={self.path('run')}/slurmd-%n.pid
SlurmctldLogFile={self.log_path('slurmctld')}
SlurmdLogFile={self.path('log')}/slurmd-%n.file.log
{SHARED_SETTINGS}{nodes}
PartitionName={self.partition} Nodes={','.join(self.names)} Default=YES MaxTime=INFINITE State=UP
"""
        with open(self.conf, 'w') as f:
            f.write(conf)
