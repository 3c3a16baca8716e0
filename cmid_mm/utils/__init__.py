from .checkpoint import register_safe_globals, safe_global_names, safe_globals
from .config import fix_dataloaders, load_config
from .dist import DeviceAgnosticDDP, init_dist, prepare_cpu_distributed, release_distributed
from .version_guard import check_versions

__all__ = [
    'register_safe_globals', 'safe_global_names', 'safe_globals', 'fix_dataloaders', 'load_config', 'DeviceAgnosticDDP', 'init_dist',
    'prepare_cpu_distributed', 'release_distributed', 'check_versions'
]
