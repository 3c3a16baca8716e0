"""A description of the machine for benchmark and study reports."""
import datetime
import os
import platform
import subprocess


# Environment variables that choose CPU kernels (and so the rounding of a run): ATen's
# vectorised kernels, oneDNN's ISA cap, MKL's ISA cap and reproducibility mode, threads.
KERNEL_ENV = ('ATEN_CPU_CAPABILITY', 'ONEDNN_MAX_CPU_ISA', 'DNNL_MAX_CPU_ISA', 'MKL_CBWR',
              'MKL_ENABLE_INSTRUCTIONS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS')
# CPU flags (/proc/cpuinfo) that change which kernels torch, oneDNN and MKL run
ISA_FLAGS = ('avx2', 'fma', 'avx512f', 'avx512_bf16', 'avx512_fp16', 'avx512_vnni', 'amx_bf16',
             'amx_tile')


def cpu_isa_flags() -> list:
    """The :data:`ISA_FLAGS` this CPU has (Linux ``/proc/cpuinfo``; [] elsewhere)."""
    try:
        with open('/proc/cpuinfo') as f:
            flags = set(next((line for line in f if line.startswith('flags')), '').split())
    except OSError:
        return []
    return [f for f in ISA_FLAGS if f in flags]


def machine_info() -> dict:
    """CPU model (``lscpu``), CPU count and affinity, library versions, platform, date; the
    CPU's ISA flags, torch's CPU capability and the kernel-choosing environment variables that
    are set (see docs/learning_signal.md, "Machine dependence")."""
    import mmengine
    import mmpretrain
    import torch
    model = platform.processor() or ''
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.lower().startswith('model name'):
                model = line.split(':', 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return dict(cpu_model=model, cpu_count=os.cpu_count(),
                affinity=len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity')
                else None, torch=torch.__version__, mmengine=mmengine.__version__,
                mmpretrain=mmpretrain.__version__, python=platform.python_version(),
                platform=platform.platform(), isa_flags=cpu_isa_flags(),
                torch_cpu_capability=_cpu_capability(),
                kernel_env={k: os.environ[k] for k in KERNEL_ENV if k in os.environ},
                date=datetime.datetime.now().astimezone().isoformat(timespec='seconds'))


def _cpu_capability():
    import torch
    try:
        return torch.backends.cpu.get_cpu_capability()
    except AttributeError:  # torch < 2.1
        return None
