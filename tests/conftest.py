import os
import os.path as osp
import sys

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..'))
if REPO not in sys.path:
    sys.path.insert(0, REPO)
# Keep the 2-core machines responsive: one intra-op thread per test process.
os.environ.setdefault('OMP_NUM_THREADS', '1')
