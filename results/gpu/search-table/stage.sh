#!/usr/bin/env bash
# Here, before the device calls: pack what the table's run needs (the GPU bundle, MiniLM-L6, GLUE's STS-B and MRPC,
# the committed HEAD as repo/) into one tar split into pieces that travel one per device call (64 MiB per call,
# the working tree included), with a checksum. README.md here gives the calls that join, check and start it.
#   usage: bash results/gpu/search-table/stage.sh [SHARED_DIR]   (writes .gpu/table-pieces/; two pieces)
set -euo pipefail
shared=${1:-../shared}
root=$(git rev-parse --show-toplevel); cd "$root"
[ -f .gpu/site.tar.xz ] || ../shared/tools/gpu-bundle .gpu
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/data/glue"
cp .gpu/site.tar.xz "$tmp/"
cp -r "$shared/models/minilm-l6-h384" "$tmp/"
for t in MRPC STS-B; do cp -r "$shared/data/glue/$t" "$tmp/data/glue/"; done
# The code that runs is the committed HEAD, not the working tree: the run outlives the calls that re-send it.
git archive --format=tar --prefix=repo/ HEAD | tar -xf - -C "$tmp"
git rev-parse --short HEAD > "$tmp/commit"
chmod -R u+w "$tmp"
rm -rf .gpu/table-pieces && mkdir -p .gpu/table-pieces
tar -cf - -C "$tmp" . | split -b 48M -d - .gpu/table-pieces/stage.tar.
(cd .gpu/table-pieces && cat stage.tar.* | sha256sum | cut -d' ' -f1 > sha256)
ls -la .gpu/table-pieces
