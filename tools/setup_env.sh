#!/usr/bin/env bash
# One-command environment for cmid_mm on a CPU machine (Debian 12, Python 3.11).
#
#   bash tools/setup_env.sh            # creates ./.venv and installs everything
#   CMID_PRETRAIN_ONLY=1 bash tools/setup_env.sh   # only what pretraining needs (~2 min)
#   CMID_OPENCD=/path/to/open-cd bash tools/setup_env.sh   # ... and open-cd from its checkout
#
# Order: torch + torchvision -> build requirements -> mmcv 2.1.0 with compiled ops (built once
# from the sdist, wheel cached OUTSIDE the checkout, keyed by torch + python version) ->
# the OpenMMLab pins -> runtime/test requirements -> `pip install -e .` -> (open-cd, if asked
# for) -> a check that `from mmcv.ops import nms, RoIAlign` runs. Safe to run again: every step
# that is already satisfied is skipped (a second run takes well under a minute).
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
#   CMID_PRETRAIN_ONLY=1   only the pretraining stack: torch, mmcv WITHOUT compiled ops (builds in
#                          about a minute instead of ~12), mmengine, mmpretrain. Enough for
#                          pretraining, export and scene classification; not for
#                          mmseg / mmdet / change detection (cmid_mm.downstream.*), which need
#                          mmcv with ops: run again without it to get the full stack.
#   CMID_OPENCD=DIR        also install open-cd (the OpenMMLab change-detection toolbox, on no
#                          package registry) from its source checkout DIR: DIR is copied to a
#                          temporary folder (pip builds in the source folder, which may be
#                          read-only) and the copy installed with `pip install --no-deps` (so pip
#                          keeps our torch / mmcv pins), plus open-cd's runtime requirements
#                          that are missing. Skipped when the installed open-cd already equals
#                          DIR file by file. open-cd's configs and tools/ stay in DIR: set
#                          OPENCD_ROOT=DIR to use configs/opencd (configs/opencd/README.md).
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

# open-cd checkout (CMID_OPENCD): checked before anything is installed
OPENCD_SRC=""
if [[ -n "${CMID_OPENCD:-}" ]]; then
  OPENCD_SRC="$(cd "$CMID_OPENCD" 2>/dev/null && pwd || true)"
  if [[ -z "$OPENCD_SRC" || ! -f "$OPENCD_SRC/setup.py" \
        || ! -f "$OPENCD_SRC/opencd/__init__.py" ]]; then
    echo "ERROR: CMID_OPENCD=$CMID_OPENCD is not an open-cd source checkout (expected setup.py" \
         "and opencd/__init__.py in it; clone https://github.com/likyoo/open-cd)" >&2
    exit 1
  fi
fi

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
PRETRAIN_ONLY="${CMID_PRETRAIN_ONLY:-0}"
if [[ "$PRETRAIN_ONLY" == 1 && -n "$OPENCD_SRC" ]]; then
  echo "ERROR: CMID_PRETRAIN_ONLY=1 and CMID_OPENCD: open-cd needs the full stack" >&2; exit 1
fi
MMCV_OK="import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'"
if [[ "$PRETRAIN_ONLY" == 1 ]]; then
  MMCV_OK="import mmcv; assert mmcv.__version__ == '$MMCV_VERSION'"
  WITH_OPS=0; FLAVOUR="mmcv-$MMCV_VERSION-noops"
else
  WITH_OPS=1; FLAVOUR="mmcv-$MMCV_VERSION"
fi
if have "$MMCV_OK"; then
  step "mmcv $MMCV_VERSION with compiled ops already installed: kept"
elif [[ "${CMID_USE_ACTIVE_ENV:-0}" == 1 ]] && have "import mmcv.ops"; then
  step "mmcv $("$PY" -c 'import mmcv; print(mmcv.__version__)') with ops already installed: kept"
else
  key="$("$PY" -c 'import sys, torch; print(f"torch{torch.__version__}-py{sys.version_info[0]}{sys.version_info[1]}")')"
  wheel_dir="$CACHE/$FLAVOUR/$key"
  wheel="$(ls "$wheel_dir"/mmcv*-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n1 || true)"
  if [[ -z "$wheel" ]]; then
    step "no cached mmcv wheel in $wheel_dir: building mmcv $MMCV_VERSION from its sdist"
    if [[ "$WITH_OPS" == 1 ]]; then
      echo "  this compiles 77 C++ files and takes ~12 minutes on 2 cores; progress is printed."
    else
      echo "  without compiled ops (CMID_PRETRAIN_ONLY=1): pure Python, about a minute (mmcv's"
      echo "  setup.py names that build mmcv-lite; cmid_mm's version check accepts it)."
    fi
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
    ( MMCV_WITH_OPS="$WITH_OPS" FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-2}" \
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
    wheel="$(ls "$wheel_dir"/mmcv*-"$MMCV_VERSION"-*.whl | head -n1)"
    step "built and cached $wheel"
  else
    step "installing cached mmcv wheel $wheel"
  fi
  pip_ install --no-deps --force-reinstall "$wheel"
  # mmcv's own runtime dependencies (the wheel was installed with --no-deps).
  pip_ install -q addict packaging pyyaml yapf 'opencv-python<5' 'numpy<2' Pillow
fi

# ---------------------------------------------------------------- OpenMMLab + requirements
if [[ "$PRETRAIN_ONLY" == 1 ]]; then
  step "OpenMMLab pretraining pins (requirements/pretrain.txt), runtime and test requirements"
  pip_ install -q -r "$REPO/requirements/pretrain.txt" -r "$REPO/requirements/runtime.txt" \
    -r "$REPO/requirements/tests.txt"
else
  step "OpenMMLab pins (requirements/mminstall.txt), runtime and test requirements"
  pip_ install -q -r "$REPO/requirements/mminstall.txt" -r "$REPO/requirements/runtime.txt" \
    -r "$REPO/requirements/tests.txt"
fi

step "cmid_mm itself (editable)"
pip_ install -q --no-deps --no-build-isolation -e "$REPO"

# ---------------------------------------------------------------- open-cd (optional)
if [[ -n "$OPENCD_SRC" ]]; then
  # installed == checkout: every opencd/**/*.py of the checkout is installed with the same bytes
  OPENCD_SAME="
import filecmp, os, sys, opencd
src = os.path.join(sys.argv[1], 'opencd'); dst = os.path.dirname(opencd.__file__)
for root, dirs, files in os.walk(src):
    dirs[:] = [d for d in dirs if d not in ('__pycache__', '.mim')]
    for f in files:
        if f.endswith('.py'):
            rel = os.path.relpath(os.path.join(root, f), src)
            if not os.path.isfile(os.path.join(dst, rel)) or not filecmp.cmp(
                    os.path.join(src, rel), os.path.join(dst, rel), shallow=False):
                sys.exit(1)
"
  # (run from / : `import opencd` must not find the checkout through the current folder)
  if (cd / && "$PY" -c "$OPENCD_SAME" "$OPENCD_SRC") >/dev/null 2>&1; then
    step "open-cd from $OPENCD_SRC already installed: kept"
  else
    step "open-cd from the checkout $OPENCD_SRC (copied, then pip install --no-deps)"
    opencd_tmp="$(mktemp -d)"
    cp -R "$OPENCD_SRC" "$opencd_tmp/open-cd"
    chmod -R u+w "$opencd_tmp/open-cd"
    rm -rf "$opencd_tmp/open-cd/build" "$opencd_tmp/open-cd"/*.egg-info
    pip_ install -q --no-deps --no-build-isolation "$opencd_tmp/open-cd" \
      || { rm -rf "$opencd_tmp"; echo "ERROR: installing open-cd from $OPENCD_SRC failed" >&2
           exit 1; }
    rm -rf "$opencd_tmp"
  fi
  # open-cd's runtime requirements, except what our stack pins (torch, torchvision, mmcv, numpy:
  # its mminstall.txt asks mmcv<2.1.0, but its import-time check accepts our 2.1.0)
  opencd_reqs=()
  if [[ -f "$OPENCD_SRC/requirements/runtime.txt" ]]; then
    while read -r req || [[ -n "$req" ]]; do  # (the file may end without a newline)
      req="${req%%#*}"; req="${req// /}"
      name="$(printf '%s' "$req" | sed -E 's/[<>=!~;\[].*//' | tr 'A-Z_' 'a-z-')"
      case "$name" in ''|torch|torchvision|mmcv|mmcv-full|numpy) continue ;; esac
      opencd_reqs+=("$req")
    done < "$OPENCD_SRC/requirements/runtime.txt"
  fi
  if [[ ${#opencd_reqs[@]} -gt 0 ]]; then
    pip_ install -q "${opencd_reqs[@]}" 'numpy<2' 'opencv-python<5'
  fi
  (cd / && "$PY" -c "import opencd, opencd.models, opencd.datasets
print(f'  ok: open-cd {opencd.__version__} imports from {opencd.__file__}')")
fi

# ---------------------------------------------------------------- check
step "checking the stack"
if [[ "$PRETRAIN_ONLY" == 1 ]]; then
  "$PY" - <<'EOF'
import torch, mmcv, mmengine, mmpretrain, cmid_mm
print(f'  ok (pretraining only): torch {torch.__version__}, mmcv {mmcv.__version__} (no '
      f'compiled ops), mmengine {mmengine.__version__}, mmpretrain {mmpretrain.__version__}, '
      f'cmid_mm {cmid_mm.__version__}')
EOF
else
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
fi
if [[ "${CMID_TEST_SERVICES:-0}" == 1 ]]; then
  step "test services (CMID_TEST_SERVICES=1): bash tools/install_test_services.sh"
  bash "$REPO/tools/install_test_services.sh"
fi
step "done. Activate with: source ${VENV:-<your env>}/bin/activate"
}

main "$@"
