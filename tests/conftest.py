import os

# Keep the 2-core machines responsive: one intra-op thread per test process.
os.environ.setdefault('OMP_NUM_THREADS', '1')

import pytest  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402


@pytest.fixture(autouse=True)
def _isolate_default_scope():
    """A Runner (or an overwrite) in one test leaves its DefaultScope as the current one; the
    next test's registry builds would then be redirected to that scope. Drop what a test adds.
    """
    before = set(DefaultScope._instance_dict)
    yield
    for name in set(DefaultScope._instance_dict) - before:
        DefaultScope._instance_dict.pop(name, None)
