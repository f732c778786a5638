"""Hugging Face transformers as the reference for llink's numerics and speed (runs on the GPU machine).

  python3 bench/device/reference.py compare --model DIR --llink FORWARD.json --ids 0,17,5,2
      the same snapshot through transformers' own modeling code (XLMRobertaModel / LlamaForCausalLM, float32, TF32
      off): max |diff| of the final hidden states (and logits, when FORWARD.json has them) against `llink forward`.
  python3 bench/device/reference.py speed [--model DECODER_DIR]
      cuBLAS matmul TFLOP/s through torch (4096^3, float32 with TF32 off and on, bfloat16), and with --model the
      decoder's forward tokens/s at batch 8 x 128 in float32 and bfloat16, as the ratio's other side.
Prints one JSON object.
"""
import argparse
import json
import sys
import time

import torch
import transformers


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def compare(args: argparse.Namespace) -> dict:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    with open(f"{args.model}/config.json") as f:
        config = json.load(f)
    with open(args.llink) as f:
        ours = json.load(f)
    ids = torch.tensor([[int(x) for x in args.ids.split(",")]], device=device())
    out: dict = {"model": args.model, "model_type": config["model_type"], "tokens": ids.shape[1], "llinkBackend": ours.get("backend")}
    with torch.no_grad():
        if config["model_type"] == "xlm-roberta":
            model = transformers.XLMRobertaModel.from_pretrained(args.model, torch_dtype=torch.float32, add_pooling_layer=False)
            model = model.to(device()).eval()
            hidden = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state[0]
            logits = None
        else:
            model = transformers.LlamaForCausalLM.from_pretrained(args.model, torch_dtype=torch.float32).to(device()).eval()
            hidden = model.model(input_ids=ids).last_hidden_state[0]
            logits = model.lm_head(hidden)
    ref_h = hidden.float().cpu()
    our_h = torch.tensor(ours["hidden"], dtype=torch.float32)
    out["hiddenShape"] = list(ref_h.shape)
    out["hiddenMaxAbsDiff"] = (our_h - ref_h).abs().max().item()
    out["hiddenMaxAbs"] = ref_h.abs().max().item()
    if logits is not None and "logits" in ours:
        ref_l = logits.float().cpu()
        our_l = torch.tensor(ours["logits"], dtype=torch.float32)
        out["logitsMaxAbsDiff"] = (our_l - ref_l).abs().max().item()
        out["logitsMaxAbs"] = ref_l.abs().max().item()
        out["argmaxAgree"] = (our_l.argmax(-1) == ref_l.argmax(-1)).float().mean().item()
    return out


def timed(fn, reps: int, warm: int = 2) -> float:
    for _ in range(warm):
        fn()
    sync()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    sync()
    return (time.perf_counter() - t) / reps


def speed(args: argparse.Namespace) -> dict:
    out: dict = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", "torch": torch.__version__, "transformers": transformers.__version__}
    n = 4096
    a = torch.randn(n, n, device=device())
    b = torch.randn(n, n, device=device())
    for label, dtype, tf32 in [("float32", torch.float32, False), ("tf32", torch.float32, True), ("bfloat16", torch.bfloat16, False)]:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        x, y = a.to(dtype), b.to(dtype)
        sec = timed(lambda: x @ y, 20)
        out[f"matmul4096_{label}_tflops"] = 2 * n**3 / sec / 1e12
    torch.backends.cuda.matmul.allow_tf32 = False
    if args.model:
        ids = torch.randint(0, 100_000, (8, 128), device=device())
        for label, dtype in [("float32", torch.float32), ("bfloat16", torch.bfloat16)]:
            model = transformers.LlamaModel.from_pretrained(args.model, torch_dtype=dtype).to(device()).eval()
            with torch.no_grad():
                sec = timed(lambda: model(input_ids=ids), 5, 1)
            out[f"decoderForward8x128_{label}_tokensPerSecond"] = 8 * 128 / sec
            del model
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compare")
    c.add_argument("--model", required=True)
    c.add_argument("--llink", required=True)
    c.add_argument("--ids", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--model")
    args = parser.parse_args()
    result = compare(args) if args.cmd == "compare" else speed(args)
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
