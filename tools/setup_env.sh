#!/usr/bin/env bash
# Build the tested MMDetection 3 stack in .venv/ (idempotent; the README's commands call it).
#
# torch 2.14.1 + torchvision 0.29.1, setuptools >=77,<81 (mmcv and mmengine import pkg_resources),
# mmengine 0.10.7, mmcv 2.1.0 built from its sdist with compiled ops (C++20 for torch 2.14 headers),
# mmdet 3.3.0, timm, pycocotools, onnx/onnxruntime, pytest, and this package in editable mode.
# The mmcv wheel is cached in ~/.cache/mmdet-efficientvit/wheels/ keyed by every version it depends on,
# so only the first setup on a machine pays the ~12-minute build.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
TORCH=2.14.1
TORCHVISION=0.29.1
MMCV=2.1.0
STACK=(
  "setuptools>=77,<81" wheel ninja "numpy<3"
  "mmengine==0.10.7" "mmdet==3.3.0" "timm>=1.0.15" "safetensors" "pycocotools"
  "onnx" "onnxruntime" "matplotlib" "pytest" "pytest-timeout"
)
STAMP_KEY="torch=$TORCH tv=$TORCHVISION mmcv=$MMCV stack=${STACK[*]} setup=$(sha1sum "$ROOT/setup.py" | cut -c1-12)"
STAMP="$VENV/.mmdet-efficientvit-setup"

step() { printf '\n==> [setup] %s\n' "$*"; }
fail() { printf '\n[setup] FAILED at step "%s": %s\n' "$CURRENT" "$*" >&2; exit 1; }
trap 'fail "command exited with status $? (see the output above)"' ERR

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_KEY" ]] && "$PY" -c "import mmdet_efficientvit" 2>/dev/null; then
  echo "[setup] .venv is up to date ($STAMP_KEY)"
  exit 0
fi

CURRENT="check prerequisites"; step "$CURRENT"
command -v python3 >/dev/null || fail "python3 not found; install Python 3.10-3.12"
command -v g++ >/dev/null || fail "no C++ compiler (g++) found; install it (Debian: apt-get install g++)"
avail_kb=$(df -Pk "$ROOT" | awk 'NR==2 {print $4}')
[[ "$avail_kb" -gt 12000000 ]] || fail "only $((avail_kb / 1024)) MiB free disk under $ROOT; the stack needs ~12 GiB"

CURRENT="create .venv"; step "$CURRENT"
[[ -x "$PY" ]] || python3 -m venv "$VENV"
"$PY" -m pip install -q --upgrade "pip>=24"

CURRENT="install torch $TORCH and torchvision $TORCHVISION"; step "$CURRENT"
"$PY" -m pip install -q "torch==$TORCH" "torchvision==$TORCHVISION"

CURRENT="install the Python stack"; step "$CURRENT"
"$PY" -m pip install -q "${STACK[@]}"

CURRENT="mmcv $MMCV with compiled ops"; step "$CURRENT"
if "$PY" -c "import mmcv, mmcv._ext; assert mmcv.__version__ == '$MMCV'" 2>/dev/null; then
  echo "[setup] mmcv $MMCV with ops already installed"
else
  flavour=$("$PY" -c "import torch, sys; print(f'torch{torch.__version__.replace(\"+\", \"_\")}-py{sys.version_info[0]}{sys.version_info[1]}-' + ('cuda' if torch.cuda.is_available() else 'cpu'))")
  CACHE="${MMDET_EVIT_CACHE:-$HOME/.cache/mmdet-efficientvit}/wheels/mmcv$MMCV-$flavour"
  mkdir -p "$CACHE"
  if ! ls "$CACHE"/mmcv-*.whl >/dev/null 2>&1; then
    echo "[setup] no cached wheel in $CACHE: building mmcv $MMCV from source (about 12 minutes on 2 cores)"
    BUILD=$(mktemp -d)
    "$PY" -m pip download -q --no-deps --no-build-isolation --no-binary :all: "mmcv==$MMCV" -d "$BUILD"
    tar -xzf "$BUILD"/mmcv-$MMCV.tar.gz -C "$BUILD"
    SRC="$BUILD/mmcv-$MMCV"
    if "$PY" -c "import torch, sys; sys.exit(0 if tuple(map(int, torch.__version__.split('.')[:2])) >= (2, 10) else 1)"; then
      # Recent torch headers use C++20 features; mmcv 2.1.0 hard-codes -std=c++17.
      sed -i 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
    fi
    export MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}"
    if "$PY" -c "import torch; import sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then export FORCE_CUDA=1; fi
    # Python's own compile flags (-O3 ...) without its -g: setuptools *replaces* them with $CFLAGS, so
    # pass them whole. No debug info builds faster and gives a smaller wheel of the same code;
    # MMCV_DEBUG=1 keeps -g.
    flags=$("$PY" -c "import sysconfig; print(sysconfig.get_config_var('CFLAGS'))")
    [[ "${MMCV_DEBUG:-0}" == 1 ]] || flags=$(sed -E 's/(^| )-g( |$)/\1-g0\2/' <<<"$flags")
    export CFLAGS="$flags ${CFLAGS:-}" CXXFLAGS="$flags ${CXXFLAGS:-}"
    build_start=$(date +%s)
    LOG="$CACHE.build.log"
    # ninja prints "[k/N] ..." per object; show one progress line per object, keep the full log.
    (cd "$SRC" && "$PY" -m pip wheel -v --no-build-isolation --no-deps . -w "$CACHE.tmp") 2>&1 | tee "$LOG" \
      | sed -un 's/^ *\[\([0-9]*\)\/\([0-9]*\)\].*/[setup] mmcv build: object \1 of \2/p' \
      || fail "mmcv build failed: the first 'error' lines of $LOG: $(grep -m3 -i 'error' "$LOG" | tr '\n' ' ')"
    echo "[setup] mmcv wheel built in $(( $(date +%s) - build_start )) s (flags: $CFLAGS; full log: $LOG)"
    mv "$CACHE.tmp"/mmcv-*.whl "$CACHE"/ && rm -rf "$CACHE.tmp" "$BUILD"
  else
    echo "[setup] using cached wheel $(ls "$CACHE"/mmcv-*.whl)"
  fi
  "$PY" -m pip install -q --no-deps --force-reinstall "$CACHE"/mmcv-*.whl
  "$PY" -m pip install -q "mmcv==$MMCV" "${STACK[@]}"   # mmcv's own requirements (addict, yapf, ...)
fi

CURRENT="install mmdet-efficientvit (editable)"; step "$CURRENT"
"$PY" -m pip install -q --no-deps --no-build-isolation -e "$ROOT"

CURRENT="verify"; step "$CURRENT"
"$PY" -c "import torch, mmcv, mmcv.ops, mmdet, mmengine, timm, mmdet_efficientvit; print('torch', torch.__version__, '| mmcv', mmcv.__version__, '| mmdet', mmdet.__version__, '| mmengine', mmengine.__version__, '| timm', timm.__version__)"
echo "$STAMP_KEY" > "$STAMP"
echo "[setup] done"
