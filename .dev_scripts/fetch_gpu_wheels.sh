#!/usr/bin/env bash
# Download the pure-Python OpenMMLab wheels that a CUDA box with Python 3.12
# and torch preinstalled (but no network) needs to import mmmoma, and 20
# real ImageNet JPEGs (from foolbox's wheel) into DEST/images for the data
# measurements of .dev_scripts/gpu_benchmark.py --images:
#   bash .dev_scripts/fetch_gpu_wheels.sh .whl
# There, before running anything of this repository:
#   python3 -m pip install -q --no-index --no-deps --no-compile \
#       --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
# --no-deps everywhere: torch, torchvision, numpy, opencv, regex, rich and
# einops are already on that box and must not move; setuptools<81 keeps the
# pkg_resources that mmengine uses to find `mmpretrain::` config bases.
set -euo pipefail

dest=${1:?usage: fetch_gpu_wheels.sh DEST}
mkdir -p "$dest"
platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
    manylinux1_x86_64; do
    platforms+=(--platform "$tag")
done
"${PYTHON:-python3}" -m pip download -q --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp "${platforms[@]}" -d "$dest" \
    mmengine==0.10.7 mmcv-lite==2.1.0 mmpretrain==1.2.0 \
    mmsegmentation==1.2.2 addict yapf platformdirs termcolor mat4py \
    modelindex model-index ordered-set importlib-metadata lazy-importer \
    prettytable ftfy wcwidth \
    "setuptools<81"
# The images only: foolbox itself is installed nowhere.
"${PYTHON:-python3}" -m pip download -q --no-deps -d "$dest/foolbox" \
    foolbox==3.3.4
"${PYTHON:-python3}" - "$dest" <<'PY'
import glob, os, sys, zipfile
dest = sys.argv[1]
os.makedirs(os.path.join(dest, 'images'), exist_ok=True)
with zipfile.ZipFile(glob.glob(os.path.join(dest, 'foolbox', '*.whl'))[0]) as z:
    for name in z.namelist():
        if name.startswith('foolbox/data/imagenet_') and name.endswith('.jpg'):
            with open(os.path.join(dest, 'images', os.path.basename(name)),
                      'wb') as f:
                f.write(z.read(name))
PY
rm -r "$dest/foolbox"
ls "$dest" "$dest/images"
