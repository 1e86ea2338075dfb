#!/usr/bin/env bash
# Run HERE (a CPU machine with PyPI) before the one device call of benchmarks/gpu/rows.sh.
# Fetches the wheels the GPU machine lacks (its image has torch, torchvision, onnxruntime,
# timm, h5py, pyarrow, opencv, scipy, sklearn... but not these; nothing can be fetched
# there) into .whl/, and copies CosPlace's reference code into .anchors/ (../shared does
# not travel). Both folders are git-excluded and named in the call's `carry`.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.whl/' .git/info/exclude || echo '/.whl/' >> .git/info/exclude
grep -qx '/.anchors/' .git/info/exclude || echo '/.anchors/' >> .git/info/exclude
rm -rf .whl && mkdir -p .whl
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$p")
done
for pkg in faiss-cpu==1.15.1 utm==0.8.1 pytorch-metric-learning kornia kornia_rs; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${platforms[@]}" -d .whl "$pkg" 2>&1 | grep -v "is ignored" || true
done
ls .whl
rm -rf .anchors && mkdir -p .anchors
cp -r "${VGLOC_SHARED:-../shared}/anchors/cosplace" .anchors/cosplace
du -sh .whl .anchors
