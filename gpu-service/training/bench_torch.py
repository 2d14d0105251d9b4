"""Times the dual-rate pair in PyTorch (GPU serving speed cannot be measured through onnxruntime-node on our
machines: its CUDA libraries cannot be fetched there). Prints JSON: ms per heavy / light call at a batch and
the resulting wall time per image of a 50-step run for each heavy interval K, with guidance rows doubled.

    python3 gpu-service/training/bench_torch.py --weights runs/gpu/weights.pt --device cuda
"""
import argparse
import json
import time

import torch

import networks
from train import pick_device


def time_call(fn, repeats):
    for _ in range(3):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats * 1000


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--weights", required=True)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--batch", type=int, default=64, help="images per call; guidance doubles the rows")
    p.add_argument("--repeats", type=int, default=50)
    args = p.parse_args()
    device = pick_device(args.device)
    weights = torch.load(args.weights, map_location="cpu")
    cfg = networks.NetConfig(**weights["net"])
    heavy, light = networks.build_pair(cfg)
    heavy.load_state_dict(weights["heavy"])
    light.load_state_dict(weights["light"])
    heavy.to(device).eval()
    light.to(device).eval()
    rows = 2 * args.batch
    x = torch.randn(rows, 1, 28, 28, device=device)
    t = torch.full((rows,), 0.5, device=device)
    label = torch.zeros(rows, dtype=torch.long, device=device)
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "images_per_call": args.batch, "rows_per_call": rows}
    # bf16 autocast only on CUDA: CPU autocast in torch 1.13 cannot run GroupNorm in bf16.
    precisions = [("fp32", None)] + ([("bf16", torch.bfloat16)] if device.type == "cuda" else [])
    for precision, dtype in precisions:
        with torch.no_grad(), torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                                             enabled=dtype is not None):
            features = heavy(x, t, label)
            heavy_ms = time_call(lambda: heavy(x, t, label), args.repeats)
            light_ms = time_call(lambda: light(x, t, label, features), args.repeats)
        per_k = {}
        for k in (1, 2, 4, 8):
            heavy_calls = len(range(0, 50, k))
            per_k[str(k)] = round((heavy_calls * heavy_ms + 50 * light_ms) / args.batch, 4)
        result[precision] = {"heavy_ms_per_call": round(heavy_ms, 3), "light_ms_per_call": round(light_ms, 3),
                             "ms_per_image_50_steps": per_k}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
