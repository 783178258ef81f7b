#!/usr/bin/env bash
# Here, before the device calls: pack what the paper-scale run needs (the GPU bundle, mpnet-base fp16, MiniLM-L6,
# MiniLM-L3, DINOv2-S, IMDb, GLUE and CIFAR-10) into one tar, split into pieces small enough to travel one per device call (64 MiB per call,
# the working tree included), with a checksum. The device then copies one piece per call into /tmp/st and the
# last call joins, checks and unpacks them (see README.md here).
#   usage: [VISION=0] bash results/gpu/paper-scale/stage.sh MPNET_DIR [SHARED_DIR]   (writes .gpu/pieces/)
# VISION=0 leaves DINOv2-S and CIFAR-10 out (two pieces fewer, when the device time is short; run.sh then skips
# the CIFAR-10 sweep).
set -euo pipefail
mpnet=$1; shared=${2:-../shared}
root=$(git rev-parse --show-toplevel); cd "$root"
[ -f .gpu/site.tar.xz ] || ../shared/tools/gpu-bundle .gpu
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/data/glue"
cp .gpu/site.tar.xz "$tmp/"
cp -r "$mpnet" "$tmp/all-mpnet-base-v2"
cp -r "$shared/models/minilm-l6-h384" "$tmp/"
cp -r "$shared/models/minilm-l3-h384" "$tmp/"
cp -r "$shared/data/imdb" "$tmp/data/"
if [ "${VISION:-1}" != 0 ]; then cp -r "$shared/models/dinov2-small" "$tmp/"; cp -r "$shared/data/cifar10" "$tmp/data/"; fi
for t in MRPC STS-B CoLA SST-2; do cp -r "$shared/data/glue/$t" "$tmp/data/glue/"; done
# The code that runs is the committed HEAD, not the working tree: the run outlives the calls that re-send it.
git archive --format=tar --prefix=repo/ HEAD | tar -xf - -C "$tmp"
git rev-parse --short HEAD > "$tmp/commit"
chmod -R u+w "$tmp"
rm -rf .gpu/pieces && mkdir -p .gpu/pieces
# 52 MiB: a piece and the working tree (about 8 MiB of tracked files) travel together under the 64 MiB a call takes.
tar -cf - -C "$tmp" . | split -b 52M -d - .gpu/pieces/stage.tar.
(cd .gpu/pieces && cat stage.tar.* | sha256sum | cut -d' ' -f1 > sha256)
ls -la .gpu/pieces
