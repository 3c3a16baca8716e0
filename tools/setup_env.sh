#!/usr/bin/env bash
# One-command environment for cmid_mm on a CPU machine (Debian 12, Python 3.11).
#
#   bash tools/setup_env.sh            # creates ./.venv and installs everything
#
# Order: torch + torchvision -> build requirements -> mmcv 2.1.0 with compiled ops (built once
# from the sdist, wheel cached OUTSIDE the checkout, keyed by torch + python version) ->
# the OpenMMLab pins -> runtime/test requirements -> `pip install -e .` -> a check that
# `from mmcv.ops import nms, RoIAlign` runs. Safe to run again: every step that is already
# satisfied is skipped (a second run takes well under a minute).
#
# Knobs (environment variables):
#   VENV=PATH              virtualenv to create/use (default: <repo>/.venv)
#   CMID_USE_ACTIVE_ENV=1  install into the python that is active now instead of a venv, and
#                          keep any torch / mmcv it already has (e.g. your CUDA torch and a
#                          matching mmcv-full): only missing pieces are installed.
#   CMID_CACHE=DIR         where the built mmcv wheel is cached (default ~/.cache/cmid_mm)
#   PYTHON=python3.11      interpreter used to create the venv
#   MAX_JOBS=2             parallel compile jobs for mmcv
#   CMID_TEST_SERVICES=1   also install the system services that tests start for real (Slurm +
#                          munge, via tools/install_test_services.sh; needs root and apt-get,
#                          says so and goes on without them otherwise)
set -euo pipefail

# Everything runs inside main() so bash has read the whole file before running any of it.
main() {

TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
MMCV_VERSION=2.1.0

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${CMID_CACHE:-$HOME/.cache/cmid_mm}"
t0=$SECONDS
step() { printf '\n[setup %4ss] %s\n' "$((SECONDS - t0))" "$*"; }

# ---------------------------------------------------------------- python / venv
if [[ "${CMID_USE_ACTIVE_ENV:-0}" == 1 ]]; then
  PY="$(command -v python)"
  step "using the active interpreter $PY (CMID_USE_ACTIVE_ENV=1): existing torch/mmcv are kept"
else
  VENV="${VENV:-$REPO/.venv}"
  if [[ ! -x "$VENV/bin/python" ]]; then
    step "creating virtualenv $VENV"
    "${PYTHON:-python3}" -m venv "$VENV"
  else
    step "reusing virtualenv $VENV"
  fi
  PY="$VENV/bin/python"
fi
pip_() { "$PY" -m pip "$@" --disable-pip-version-check; }

# Python check: `have_module "import x; assert ..."` returns 0 when the snippet runs.
have() { "$PY" -c "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------- torch
if have "import torch, torchvision"; then
  step "torch $("$PY" -c 'import torch; print(torch.__version__)') already installed: kept"
  if [[ "${CMID_USE_ACTIVE_ENV:-0}" != 1 ]] && \
     ! have "import torch; assert torch.__version__.split('+')[0] == '$TORCH_VERSION'"; then
    echo "  note: cmid_mm is tested with torch $TORCH_VERSION; delete $VENV to start over."
  fi
else
  step "installing torch $TORCH_VERSION + torchvision $TORCHVISION_VERSION (large; a few minutes)"
  pip_ install "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" "numpy<2"
fi

step "build requirements (requirements/build.txt)"
pip_ install -q -r "$REPO/requirements/build.txt"

# ---------------------------------------------------------------- mmcv with ops
MMCV_OK="import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'"
if have "$MMCV_OK"; then
  step "mmcv $MMCV_VERSION with compiled ops already installed: kept"
elif [[ "${CMID_USE_ACTIVE_ENV:-0}" == 1 ]] && have "import mmcv.ops"; then
  step "mmcv $("$PY" -c 'import mmcv; print(mmcv.__version__)') with ops already installed: kept"
else
  key="$("$PY" -c 'import sys, torch; print(f"torch{torch.__version__}-py{sys.version_info[0]}{sys.version_info[1]}")')"
  wheel_dir="$CACHE/mmcv-$MMCV_VERSION/$key"
  wheel="$(ls "$wheel_dir"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n1 || true)"
  if [[ -z "$wheel" ]]; then
    step "no cached mmcv wheel in $wheel_dir: building mmcv $MMCV_VERSION from its sdist"
    echo "  this compiles 77 C++ files and takes ~12 minutes on 2 cores; progress is printed."
    build="$(mktemp -d)"
    trap 'rm -rf "$build"' EXIT
    pip_ download -q --no-deps --no-build-isolation --no-binary :all: -d "$build" "mmcv==$MMCV_VERSION"
    tar -xzf "$build"/mmcv-"$MMCV_VERSION".tar.gz -C "$build"
    src="$build/mmcv-$MMCV_VERSION"
    # torch >= 2.4 headers need C++20; mmcv 2.1.0 hard-codes -std=c++17 after CFLAGS.
    n=$(grep -c -- '-std=c++17' "$src/setup.py" || true)
    sed -i 's/-std=c++17/-std=c++20/g' "$src/setup.py"
    echo "  patched $n occurrence(s) of -std=c++17 -> -std=c++20 in setup.py"
    mkdir -p "$wheel_dir"
    log="$build/build.log"
    ( MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-2}" \
        "$PY" -m pip wheel --no-deps --no-build-isolation -w "$wheel_dir" "$src" >"$log" 2>&1 ) &
    pid=$!
    total=$(ls "$src"/mmcv/ops/csrc/pytorch/*.cpp "$src"/mmcv/ops/csrc/pytorch/cpu/*.cpp | wc -l)
    while kill -0 "$pid" 2>/dev/null; do
      sleep 30
      done_n=$(find "$src" -name '*.o' -newer "$src/setup.py" 2>/dev/null | wc -l)
      printf '  [%4ss] compiling mmcv ops: %s/%s object files\n' "$((SECONDS - t0))" "$done_n" "$total"
    done
    if ! wait "$pid"; then
      echo "ERROR: building mmcv failed; last lines of $log:" >&2
      tail -n 40 "$log" >&2
      exit 1
    fi
    wheel="$(ls "$wheel_dir"/mmcv-"$MMCV_VERSION"-*.whl | head -n1)"
    step "built and cached $wheel"
  else
    step "installing cached mmcv wheel $wheel"
  fi
  pip_ install --no-deps --force-reinstall "$wheel"
  # mmcv's own runtime dependencies (the wheel was installed with --no-deps).
  pip_ install -q addict packaging pyyaml yapf 'opencv-python<5' 'numpy<2' Pillow
fi

# ---------------------------------------------------------------- OpenMMLab + requirements
step "OpenMMLab pins (requirements/mminstall.txt), runtime and test requirements"
pip_ install -q -r "$REPO/requirements/mminstall.txt" -r "$REPO/requirements/runtime.txt" \
  -r "$REPO/requirements/tests.txt"

step "cmid_mm itself (editable)"
pip_ install -q --no-deps --no-build-isolation -e "$REPO"

# ---------------------------------------------------------------- check
step "checking the stack"
"$PY" - <<'EOF'
import torch
from mmcv.ops import nms, RoIAlign
import mmcv, mmengine, mmpretrain, mmseg, mmdet, cmid_mm
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
_, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
assert keep.tolist() == [0, 2], keep
RoIAlign((2, 2), 1.0)(torch.rand(1, 1, 8, 8), torch.tensor([[0., 0., 0., 4., 4.]]))
print(f'  ok: torch {torch.__version__}, mmcv {mmcv.__version__} (CPU ops run), '
      f'mmengine {mmengine.__version__}, mmpretrain {mmpretrain.__version__}, '
      f'mmseg {mmseg.__version__}, mmdet {mmdet.__version__}, cmid_mm {cmid_mm.__version__}')
EOF
if [[ "${CMID_TEST_SERVICES:-0}" == 1 ]]; then
  step "test services (CMID_TEST_SERVICES=1): bash tools/install_test_services.sh"
  bash "$REPO/tools/install_test_services.sh"
fi
step "done. Activate with: source ${VENV:-<your env>}/bin/activate"
}

main "$@"
