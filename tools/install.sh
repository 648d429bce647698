#!/usr/bin/env bash
# Install the whole pera-mm stack into the current Python environment.
#
# Idempotent: every step checks what is already there. mmcv 2.1.0 has no wheels
# on PyPI, so it is built once from the sdist (with ops) and the wheel is kept in
# a wheelhouse OUTSIDE the repo; later installs reuse it in seconds.
#
# Environment knobs:
#   PYTHON                python to install into (default: python)
#   PERA_MM_TORCH         pip spec for torch/torchvision (default below), or
#                         "keep" to use the torch already installed (e.g. a CUDA
#                         build on a GPU cluster; mmcv is then built against it)
#   PERA_MM_WHEELHOUSE    where built mmcv wheels are cached
#                         (default: ~/.cache/pera-mm/wheels)
#   MAX_JOBS              parallel compile jobs for the mmcv build (default: nproc)
#   FORCE_CUDA=1          build mmcv's CUDA ops even when no GPU is visible
set -euo pipefail

PYTHON=${PYTHON:-python}
TORCH_SPEC=${PERA_MM_TORCH:-"torch==2.14.1 torchvision==0.29.1"}
WHEELHOUSE=${PERA_MM_WHEELHOUSE:-"$HOME/.cache/pera-mm/wheels"}
MMCV_VERSION=2.1.0
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PIP=("$PYTHON" -m pip install --disable-pip-version-check)

log() { printf '[install] %s\n' "$*"; }

# 1. Build tooling. setuptools >= 77.0.3 for torch, < 82 because mmcv's
#    setup.py and mmengine still import pkg_resources; ninja parallelises the build.
"${PIP[@]}" -q "setuptools>=77.0.3,<82" wheel ninja

# 2. torch / torchvision.
if [ "$TORCH_SPEC" = keep ]; then
    "$PYTHON" -c 'import torch' 2>/dev/null \
        || { echo "PERA_MM_TORCH=keep but torch is not installed" >&2; exit 1; }
    log "keeping installed torch"
else
    # shellcheck disable=SC2086
    "${PIP[@]}" -q $TORCH_SPEC
fi
# Pin whatever torch is now installed so no later step swaps it out.
CONSTRAINTS=$(mktemp)
trap 'rm -f "$CONSTRAINTS"' EXIT
"$PYTHON" - >"$CONSTRAINTS" <<'EOF'
from importlib.metadata import version
for name in ('torch', 'torchvision'):
    try:
        print(f'{name}=={version(name)}')
    except Exception:
        pass
EOF

# 3. mmengine (pure Python).
"${PIP[@]}" -q -c "$CONSTRAINTS" "mmengine==0.10.7"

# 4. mmcv with ops, from the wheelhouse or built once into it.
mmcv_ok() {
    "$PYTHON" - <<EOF 2>/dev/null
import mmcv, mmcv.ops  # mmcv.ops loads the compiled _ext
assert mmcv.__version__ == '$MMCV_VERSION'
EOF
}
if mmcv_ok; then
    log "mmcv $MMCV_VERSION with ops already installed"
else
    # The cache key names everything the binary depends on.
    KEY=$("$PYTHON" - <<EOF
import sys, torch, os
cuda = torch.version.cuda if (torch.cuda.is_available() or os.getenv('FORCE_CUDA') == '1') and torch.version.cuda else 'cpu'
print(f"mmcv-$MMCV_VERSION-torch{torch.__version__.split('+')[0]}-{'cu' + cuda.replace('.', '') if cuda != 'cpu' else 'cpu'}-py{sys.version_info[0]}{sys.version_info[1]}")
EOF
)
    CACHE="$WHEELHOUSE/$KEY"
    if ! ls "$CACHE"/mmcv-*.whl >/dev/null 2>&1; then
        log "building mmcv $MMCV_VERSION with ops (once; 25-50 min on 2 cores) -> $CACHE"
        BUILD=$(mktemp -d)
        "$PYTHON" -m pip download -q --no-deps --no-binary :all: --no-build-isolation \
            "mmcv==$MMCV_VERSION" -d "$BUILD"
        tar xzf "$BUILD/mmcv-$MMCV_VERSION.tar.gz" -C "$BUILD"
        SRC="$BUILD/mmcv-$MMCV_VERSION"
        # torch >= 2.10 headers need C++20; mmcv 2.1.0 hard-codes C++17.
        if "$PYTHON" -c "import torch,sys; v=tuple(int(x) for x in torch.__version__.split('+')[0].split('.')[:2]); sys.exit(0 if v>=(2,10) else 1)"; then
            sed -i -e 's/-std=c++17/-std=c++20/g' -e 's#/std:c++17#/std:c++20#g' "$SRC/setup.py"
            log "patched mmcv setup.py for C++20"
        fi
        MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
            "$PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w "$BUILD/dist" "$SRC"
        mkdir -p "$CACHE"
        mv "$BUILD"/dist/mmcv-*.whl "$CACHE/"
        rm -rf "$BUILD"
    fi
    "${PIP[@]}" -q --no-deps --force-reinstall "$CACHE"/mmcv-*.whl
    "${PIP[@]}" -q -c "$CONSTRAINTS" addict packaging Pillow pyyaml yapf opencv-python
    mmcv_ok || { echo "mmcv $MMCV_VERSION installed but mmcv.ops does not import" >&2; exit 1; }
fi

# 5. The OpenMMLab toolboxes, our runtime, test, lint (ruff and pre-commit, pinned;
#    the lint step of .ci/run needs them) and optional (TensorBoard) requirements,
#    and pera-mm itself.
"${PIP[@]}" -q -c "$CONSTRAINTS" \
    -r "$REPO/requirements/mminstall.txt" \
    -r "$REPO/requirements/runtime.txt" \
    -r "$REPO/requirements/tests.txt" \
    -r "$REPO/requirements/lint.txt" \
    -r "$REPO/requirements/optional.txt"
"${PIP[@]}" -q -c "$CONSTRAINTS" --no-deps --no-build-isolation -e "$REPO"
"$PYTHON" -c "import pera_mm, mmcv, mmpretrain, mmseg, mmdet; print('[install] pera-mm', pera_mm.__version__, '| mmcv', mmcv.__version__, '| mmpretrain', mmpretrain.__version__, '| mmseg', mmseg.__version__, '| mmdet', mmdet.__version__)"
