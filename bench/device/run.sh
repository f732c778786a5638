#!/usr/bin/env bash
# The device check of the WebGPU backend, on a GPU machine that reaches nothing (built by bench/device/pack.sh):
#   run(command="bash bench/device/run.sh", carry=[".device"], timeout_s=600)
# Writes $OUT/device.json (and run.log): the adapter, llink's numerics against Hugging Face transformers on the tiny
# checkpoints and on xlm-roberta-base / Llama-3.2-1B-shaped random ones, matmul TFLOP/s on WebGPU and through cuBLAS,
# forward, Stage A and Stage B speed at the paper's shapes and the paper run's hours extrapolated from them, and the
# same measurements with cpu-blas on that machine's CPU. Every step is time-boxed and recorded; one that fails leaves
# its error in device.json and the others still run. `--smoke` runs it all at tiny sizes (for checking the script on
# a CPU machine with software Vulkan; Python parts are skipped where torch is absent).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/.device-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/run.log") 2>&1
smoke=0
[ "${1:-}" = "--smoke" ] && smoke=1
work=${LLINK_DEVICE_WORK:-/tmp/llink-device}
mkdir -p "$work"
t0=$(date +%s)
step() { echo "== [$(( $(date +%s) - t0 )) s] $*"; }

step "setup"
# Node 22 (the machine may have none, or an old one)
if command -v node >/dev/null && node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=18)?0:1)'; then
  NODE=$(command -v node)
else
  NODE=$work/node
  [ -x "$NODE" ] || { python3 -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],'wb'))" .device/node.xz "$NODE" && chmod +x "$NODE"; }
fi
"$NODE" --version
# the npm files (llink's own sources travel in the working tree)
if [ ! -e node_modules ]; then
  mkdir -p "$work/nm"
  python3 -c "import tarfile,sys; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" .device/node_modules.tar.xz "$work/nm"
  ln -s "$work/nm/node_modules" node_modules
fi
# the Vulkan loader and OpenBLAS, unpacked beside the system (never over it)
for f in .device/debs/*.deb; do dpkg -x "$f" "$work/sys"; done
export LD_LIBRARY_PATH="$work/sys/usr/lib/x86_64-linux-gnu:$work/sys/usr/lib/x86_64-linux-gnu/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -e "$nvidia_icd" ]; then export VK_DRIVER_FILES=$nvidia_icd; fi
echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"
have_torch=0
python3 -c "import torch, transformers" 2>/dev/null && have_torch=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null > "$work/nvidia-smi.txt" || true
# one record per step: name, exit status, seconds (device.json gathers them)
: > "$work/steps.tsv"
timed() {
  local name=$1 limit=$2
  shift 2
  local s=$(date +%s)
  step "$name"
  timeout "$limit" "$@"
  local rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - s ))" >> "$work/steps.tsv"
  [ $rc -eq 0 ] || echo "!! $name exited $rc"
  return 0
}

timed doctor 90 bash -c "LLINK_BACKEND=webgpu $NODE bin/llink.mjs doctor > '$work/doctor.txt' 2>&1; cat '$work/doctor.txt'"

# 1. numerics: llink forward (webgpu, and cpu-blas) against transformers
timed init-tiny 120 "$NODE" bin/llink.mjs init-models --preset tiny --out "$work/tiny" --seed 3
if [ $smoke = 0 ]; then timed init-paper 300 "$NODE" bin/llink.mjs init-models --preset paper --out "$work/paper" --seed 3; fi
dec_ids=128000,9906,1917,11,1633,374,264,1296,315,279,4221,13,578,3363,7187,2697
enc_ids=0,17,5,9,44,101,250,3,77,2
forward_pair() { # model-folder tag ids [--logits]
  local dir=$1 tag=$2 ids=$3 extra=${4:-}
  for be in webgpu blas; do
    timed "forward-$tag-$be" 240 bash -c "LLINK_BACKEND=$be $NODE bin/llink.mjs forward --model '$dir' --ids $ids $extra > '$work/forward-$tag-$be.json'"
    if [ $have_torch = 1 ]; then
      timed "reference-$tag-$be" 240 bash -c "python3 bench/device/reference.py compare --model '$dir' --llink '$work/forward-$tag-$be.json' --ids $ids > '$work/reference-$tag-$be.json'"
    fi
  done
}
forward_pair "$work/tiny/encoder" tiny-encoder "$enc_ids"
forward_pair "$work/tiny/decoder" tiny-decoder "$dec_ids" --logits
if [ $smoke = 0 ]; then
  forward_pair "$work/paper/encoder" xlmr-base-encoder "$enc_ids"
  forward_pair "$work/paper/decoder" llama-1b-decoder "$dec_ids" --logits
fi

# 2. speed: WebGPU at the paper's shapes, then cpu-blas on this machine's CPU, then torch/cuBLAS
if [ $smoke = 1 ]; then
  timed measure-webgpu 300 env LLINK_BACKEND=webgpu "$NODE" bench/device/measure.ts --scale smoke --out "$work/measure-webgpu.json"
  timed measure-cpu 300 env LLINK_BACKEND=blas "$NODE" bench/device/measure.ts --scale smoke --out "$work/measure-cpu.json"
else
  models=(--decoder "$work/paper/decoder" --encoder "$work/paper/encoder")
  timed measure-webgpu 420 env LLINK_BACKEND=webgpu "$NODE" bench/device/measure.ts --scale paper "${models[@]}" --out "$work/measure-webgpu.json"
  timed measure-cpu 300 env LLINK_BACKEND=blas "$NODE" bench/device/measure.ts --scale cpu "${models[@]}" --out "$work/measure-cpu.json"
fi
if [ $have_torch = 1 ]; then
  if [ $smoke = 0 ]; then timed torch-speed 180 bash -c "python3 bench/device/reference.py speed --model '$work/paper/decoder' > '$work/torch-speed.json'"
  else timed torch-speed 180 bash -c "python3 bench/device/reference.py speed > '$work/torch-speed.json'"; fi
fi

step "device.json"
python3 - "$work" "$OUT/device.json" "$smoke" <<'PY'
import glob, json, os, sys
work, out, smoke = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except Exception as e:  # recorded, not hidden: a step that failed has no file
        return {"missing": f"{os.path.basename(path)}: {e}"}
def text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        return f"missing: {e}"
steps = [dict(zip(["name", "exit", "seconds"], line.rstrip("\n").split("\t"))) for line in open(os.path.join(work, "steps.tsv"))]
numerics = {}
for f in sorted(glob.glob(os.path.join(work, "reference-*.json"))):
    numerics[os.path.basename(f)[len("reference-"):-len(".json")]] = load(f)
# webgpu against cpu-blas, from the forward outputs themselves
def max_diff(a, b):
    if a is None or b is None: return None
    fa = [x for row in a for x in row]; fb = [x for row in b for x in row]
    return max(abs(x - y) for x, y in zip(fa, fb)) if len(fa) == len(fb) else None
for f in sorted(glob.glob(os.path.join(work, "forward-*-webgpu.json"))):
    tag = os.path.basename(f)[len("forward-"):-len("-webgpu.json")]
    g, c = load(f), load(os.path.join(work, f"forward-{tag}-blas.json"))
    numerics[f"{tag}-webgpu-vs-blas"] = {"hiddenMaxAbsDiff": max_diff(g.get("hidden"), c.get("hidden")), "logitsMaxAbsDiff": max_diff(g.get("logits"), c.get("logits"))}
gpu, cpu, torch_speed = load(os.path.join(work, "measure-webgpu.json")), load(os.path.join(work, "measure-cpu.json")), load(os.path.join(work, "torch-speed.json"))
def get(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d: return None
        d = d[k]
    return d
def ratio(a, b):
    return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None
summary = {
    "webgpuMatmulTflops": ratio(get(gpu, "matmul", "gflops"), 1000),
    "cublasFloat32Tflops": get(torch_speed, "matmul4096_float32_tflops"),
    "cublasTf32Tflops": get(torch_speed, "matmul4096_tf32_tflops"),
    "decoderForwardShareOfWebgpuPeak": get(gpu, "decoderForward", "shareOfMatmulPeak"),
    "goalForwardShareAtLeast": 0.3,
    "webgpuOverCpuDecoderTokensPerSecond": ratio(get(gpu, "decoderForward", "tokensPerSecond16Layers"), get(cpu, "decoderForward", "tokensPerSecond16Layers")),
    "webgpuOverTorchFloat32Forward": ratio(get(gpu, "decoderForward", "tokensPerSecond16Layers"), get(torch_speed, "decoderForward8x128_float32_tokensPerSecond")),
    "paperRunHoursWebgpu": get(gpu, "paperRun", "totalHours"),
    "paperRunHoursCpu": get(cpu, "paperRun", "totalHours"),
    "goalPaperRunHoursBelow": 12,
}
doc = {"smoke": smoke, "nvidiaSmi": text(os.path.join(work, "nvidia-smi.txt")).strip(), "doctor": text(os.path.join(work, "doctor.txt")),
       "steps": steps, "numerics": numerics, "webgpu": gpu, "cpu": cpu, "torch": torch_speed, "summary": summary}
with open(out, "w") as f:
    json.dump(doc, f, indent=2)
print(json.dumps(summary, indent=2))
PY
step "done"
