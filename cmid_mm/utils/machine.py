"""A description of the machine for benchmark and study reports."""
import datetime
import os
import platform
import subprocess


def machine_info() -> dict:
    """CPU model (``lscpu``), CPU count and affinity, library versions, platform, date."""
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
                platform=platform.platform(),
                date=datetime.datetime.now().astimezone().isoformat(timespec='seconds'))
