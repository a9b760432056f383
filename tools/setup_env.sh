#!/usr/bin/env bash
# Build a tested MMDetection 3 stack (idempotent; the README's commands call it). STACK picks which:
#   upstream (default)  .venv/        OpenMMLab's last releases: mmengine 0.10.7, mmcv 2.1.0, mmdet 3.3.0
#   onedl               .venv-onedl/  VBTI's maintained OneDL continuation: onedl-mmengine 0.10.12,
#                                     onedl-mmcv 2.3.6, onedl-mmdetection 3.5.1 (+ its imaug chain:
#                                     imgaug, scikit-image, shapely, opencv < 4.13)
# Both stacks install the same modules (mmengine, mmcv, mmdet); mmdet_efficientvit/version.py holds the
# ranges the import guard accepts on each.
#
# Common to both: torch 2.14.1 + torchvision 0.29.1, setuptools >=77,<81 (mmcv and mmengine import
# pkg_resources), mmcv built from its sdist with compiled ops (C++20 for torch 2.14 headers; onedl-mmcv
# has no MMCV_WITH_OPS switch and builds its ops whenever torch imports at build time, hence
# --no-build-isolation), timm, pycocotools, onnx/onnxruntime, openvino (onnx_inference.py's optional second
# runtime, for its tests), Gradio (the demo page, tools/webui.py), pytest and Playwright (the page's
# browser test, which drives Debian's Chromium: tools/install_browser.sh installs it where it can),
# and this package in editable mode.
# The mmcv wheel is cached in ~/.cache/mmdet-efficientvit/wheels/ keyed by every version it depends on
# (on CUDA also the CUDA version and GPU arches), so only the first setup on a machine pays the build.
# CUDA machines: tools/setup_cuda.py decides which torch (TORCH_KEEP / TORCH_SPEC / TORCH_INDEX_URL),
# CPU or CUDA ops, which nvcc and TORCH_CUDA_ARCH_LIST, and stops with the fix before the build when the
# GPU, the driver, torch or nvcc do not fit together (see its docstring for the variables).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TORCH=2.14.1
TORCHVISION=0.29.1
case "${STACK:-upstream}" in
  upstream)
    VENV="$ROOT/.venv"; MMCV_DIST=mmcv; MMCV=2.1.0
    MM=("mmengine==0.10.7" "mmdet==3.3.0") ;;
  onedl)
    VENV="$ROOT/.venv-onedl"; MMCV_DIST=onedl-mmcv; MMCV=2.3.6
    MM=("onedl-mmengine==0.10.12" "onedl-mmdetection==3.5.1") ;;
  *)
    echo "[setup] unknown STACK='$STACK': use STACK=upstream (the default, .venv/) or STACK=onedl (.venv-onedl/)" >&2
    exit 2 ;;
esac
PY="$VENV/bin/python"
PACKAGES=(
  "setuptools>=77,<81" wheel ninja "numpy<3"
  "${MM[@]}" "timm>=1.0.15" "safetensors" "pycocotools"
  "onnx" "onnxruntime" "openvino" "matplotlib" "gradio>=6" "pytest" "pytest-timeout" "playwright"
)
# (The upstream key is built as it was before the STACK knob.)
STAMP_KEY="torch=$TORCH tv=$TORCHVISION mmcv=$MMCV stack=${PACKAGES[*]} setup=$(sha1sum "$ROOT/setup.py" | cut -c1-12)"
# The CUDA choices (each only when set, so a CPU machine's key stays as it was).
STAMP_KEY+="${TORCH_KEEP:+ keep=$TORCH_KEEP}${TORCH_SPEC:+ spec=$TORCH_SPEC}${TORCH_INDEX_URL:+ index=$TORCH_INDEX_URL}"
STAMP_KEY+="${MMDET_EVIT_CPU_ONLY:+ cpu-only=$MMDET_EVIT_CPU_ONLY}${FORCE_CUDA:+ force-cuda=$FORCE_CUDA}"
STAMP_KEY+="${TORCH_CUDA_ARCH_LIST:+ arch=$TORCH_CUDA_ARCH_LIST}${CUDA_HOME:+ cuda-home=$CUDA_HOME}"
STAMP_KEY+="$(if command -v nvidia-smi >/dev/null; then echo ' nvidia-smi=yes'; fi)"
STAMP="$VENV/.mmdet-efficientvit-setup"

step() { printf '\n==> [setup] %s\n' "$*"; }
fail() { printf '\n[setup] FAILED at step "%s": %s\n' "$CURRENT" "$*" >&2; exit 1; }
trap 'fail "command exited with status $? (see the output above)"' ERR

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_KEY" ]] && "$PY" -c "import mmdet_efficientvit" 2>/dev/null; then
  echo "[setup] ${VENV#$ROOT/} is up to date ($STAMP_KEY)"
  exit 0
fi

CURRENT="check prerequisites"; step "$CURRENT"
command -v python3 >/dev/null || fail "python3 not found; install Python 3.10-3.12"
command -v g++ >/dev/null || fail "no C++ compiler (g++) found; install it (Debian: apt-get install g++)"
avail_kb=$(df -Pk "$ROOT" | awk 'NR==2 {print $4}')
[[ "$avail_kb" -gt 12000000 ]] || fail "only $((avail_kb / 1024)) MiB free disk under $ROOT; the stack needs ~12 GiB"

CURRENT="create ${VENV#$ROOT/}"; step "$CURRENT"
[[ -x "$PY" ]] || python3 -m venv "$VENV"
"$PY" -m pip install -q --upgrade "pip>=24"

CURRENT="install torch"; step "$CURRENT"
torch_args=$("$PY" "$ROOT/tools/setup_cuda.py" torch-args --python "$PY" "torch==$TORCH" "torchvision==$TORCHVISION") || exit 2
if [[ -n "$torch_args" ]]; then
  mapfile -t torch_args <<<"$torch_args"
  echo "[setup] pip install ${torch_args[*]}"
  "$PY" -m pip install -q "${torch_args[@]}"
fi

CURRENT="check for NVIDIA GPUs (CPU or CUDA ops, nvcc, arches)"; step "$CURRENT"
# Refuses (exit 2, with the fix) before any long build; may install the PyPI nvcc into .venv.
cuda_plan=$("$PY" "$ROOT/tools/setup_cuda.py" plan --python "$PY") || exit 2
eval "$cuda_plan"  # export MMCV_FLAVOUR [FORCE_CUDA CUDA_HOME TORCH_CUDA_ARCH_LIST]

CURRENT="install the Python stack"; step "$CURRENT"
"$PY" -m pip install -q "${PACKAGES[@]}"

CURRENT="$MMCV_DIST $MMCV with compiled ops"; step "$CURRENT"
# An installed mmcv counts only as this distribution and version, with CUDA ops where the plan wants them.
if "$PY" -c "import importlib.metadata as m, mmcv._ext; assert m.version('$MMCV_DIST') == '$MMCV'
assert '${FORCE_CUDA:-0}' != '1' or mmcv._ext.get_compiling_cuda_version() != 'not available'" 2>/dev/null; then
  echo "[setup] $MMCV_DIST $MMCV with ops already installed"
else
  CACHE="${MMDET_EVIT_CACHE:-$HOME/.cache/mmdet-efficientvit}/wheels/$MMCV_DIST$MMCV-$MMCV_FLAVOUR"
  WHEEL_GLOB="${MMCV_DIST//-/_}-*.whl"   # mmcv-2.1.0-... / onedl_mmcv-2.3.6-...
  mkdir -p "$CACHE"
  if ! compgen -G "$CACHE/$WHEEL_GLOB" >/dev/null; then
    echo "[setup] no cached wheel in $CACHE: building $MMCV_DIST $MMCV from source (about 12 minutes on 2 cores)"
    BUILD=$(mktemp -d)
    "$PY" -m pip download -q --no-deps --no-build-isolation --no-binary :all: "$MMCV_DIST==$MMCV" -d "$BUILD"
    tar -xzf "$BUILD"/*.tar.gz -C "$BUILD"
    SRC=$(find "$BUILD" -mindepth 1 -maxdepth 1 -type d)
    if "$PY" -c "import torch, sys; sys.exit(0 if tuple(map(int, torch.__version__.split('.')[:2])) >= (2, 10) else 1)"; then
      # Recent torch headers use C++20 features; mmcv 2.1.0 and onedl-mmcv 2.3 hard-code -std=c++17.
      sed -i 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
    fi
    # mmcv builds its ops only with MMCV_WITH_OPS=1; onedl-mmcv always does (torch imports: no isolation).
    export MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}"  # FORCE_CUDA etc.: from the plan above
    # Python's own compile flags (-O3 ...) without its -g: setuptools *replaces* them with $CFLAGS, so
    # pass them whole. No debug info builds faster and gives a smaller wheel of the same code;
    # MMCV_DEBUG=1 keeps -g.
    flags=$("$PY" -c "import sysconfig; print(sysconfig.get_config_var('CFLAGS'))")
    [[ "${MMCV_DEBUG:-0}" == 1 ]] || flags=$(sed -E 's/(^| )-g( |$)/\1-g0\2/' <<<"$flags")
    export CFLAGS="$flags ${CFLAGS:-}" CXXFLAGS="$flags ${CXXFLAGS:-}"
    build_start=$(date +%s)
    cpu_start=$(awk '{print $16 + $17}' /proc/$$/stat)  # CPU ticks of finished child processes
    LOG="$CACHE.build.log"
    # ninja prints "[k/N] ..." per object; show one progress line per object, keep the full log.
    (cd "$SRC" && "$PY" -m pip wheel -v --no-build-isolation --no-deps . -w "$CACHE.tmp") 2>&1 | tee "$LOG" \
      | sed -un "s/^ *\[\([0-9]*\)\/\([0-9]*\)\].*/[setup] $MMCV_DIST build: object \1 of \2/p" \
      || fail "$MMCV_DIST build failed: the first 'error' lines of $LOG: $(grep -m3 -i 'error' "$LOG" | tr '\n' ' ')"
    # A wheel without mmcv/_ext*.so means the ops were skipped (onedl-mmcv does so silently without torch).
    "$PY" -c "import sys, zipfile; sys.exit(not any(n.startswith('mmcv/_ext') for n in zipfile.ZipFile(sys.argv[1]).namelist()))" \
      "$CACHE.tmp"/$WHEEL_GLOB \
      || fail "the $MMCV_DIST wheel has no compiled ops (mmcv/_ext); see $LOG"
    cpu_s=$(( ($(awk '{print $16 + $17}' /proc/$$/stat) - cpu_start) / $(getconf CLK_TCK) ))
    echo "[setup] $MMCV_DIST wheel built in $(( $(date +%s) - build_start )) s wall, ${cpu_s} s CPU" \
         "(flags: $CFLAGS; full log: $LOG)"
    mv "$CACHE.tmp"/$WHEEL_GLOB "$CACHE"/ && rm -rf "$CACHE.tmp" "$BUILD"
  else
    echo "[setup] using cached wheel $(ls "$CACHE"/$WHEEL_GLOB)"
  fi
  "$PY" -m pip install -q --no-deps --force-reinstall "$CACHE"/$WHEEL_GLOB
  "$PY" -m pip install -q "$MMCV_DIST==$MMCV" "${PACKAGES[@]}"   # mmcv's own requirements (addict, yapf, ...)
fi

CURRENT="Chromium for the demo page's browser test"; step "$CURRENT"
bash "$ROOT/tools/install_browser.sh"   # never fails: without a browser that test skips with the reason

CURRENT="install mmdet-efficientvit (editable)"; step "$CURRENT"
"$PY" -m pip install -q --no-deps --no-build-isolation -e "$ROOT"

CURRENT="verify"; step "$CURRENT"
"$PY" -c "import torch, mmcv, mmcv.ops, mmdet, mmengine, timm, mmdet_efficientvit; print('torch', torch.__version__, '| mmcv', mmcv.__version__, '| mmdet', mmdet.__version__, '| mmengine', mmengine.__version__, '| timm', timm.__version__)"
echo "$STAMP_KEY" > "$STAMP"
echo "[setup] done"
