"""Trains the dual-rate pair for feature reuse.

    python3 gpu-service/training/train.py --preset gpu --max-seconds 300 --out runs/gpu

Each example pairs two noise levels the way the sampler will: the light net sees x_t, the heavy net sees an
earlier (noisier) state x_s ~ q(x_s | x_t) of the same trajectory, with s - t drawn up to the staleness that
heavy interval 8 produces at 50 steps (and s = t part of the time). Loss: MSE on the x0 prediction.
Writes <out>/checkpoint.pt (resumable) and <out>/weights.pt (EMA weights + config, what export.py reads).
"""
import argparse
import json
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

import data
import networks
import schedule
from macs import pair_macs, param_count


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(networks.PRESETS), default="gpu")
    p.add_argument("--out", required=True, help="folder for checkpoint.pt, weights.pt and train-log.jsonl")
    p.add_argument("--data-dir", default=None, help="Fashion-MNIST IDX folder (default: Debian's, or $FASHION_MNIST_DIR)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--steps", type=int, default=200_000, help="stop after this many optimizer steps")
    p.add_argument("--max-seconds", type=float, default=None, help="stop after this much training time")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--warmup-steps", type=int, default=500)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--ema-decay", type=float, default=0.9995)
    p.add_argument("--label-dropout", type=float, default=0.1, help="classifier-free guidance: P(label -> null)")
    p.add_argument("--max-gap", type=float, default=8 / 50,
                   help="largest s - t: heavy interval 8 at 50 steps leaves features up to 7/50 stale")
    p.add_argument("--same-time-prob", type=float, default=0.25, help="P(s = t): fresh features, as at heavy steps")
    p.add_argument("--subset", type=int, default=None, help="train on the first N examples only (smoke tests)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    p.add_argument("--checkpoint-every", type=float, default=60.0, help="seconds between checkpoints")
    p.add_argument("--log-every", type=int, default=100)
    return p.parse_args(argv)


def pick_device(choice):
    if choice == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda asked for, but torch.cuda.is_available() is False")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Ema:
    """Exponential moving average of the weights (with the usual warm-up so early averages are not stale)."""

    def __init__(self, modules, decay):
        self.decay = decay
        self.shadow = [{k: v.detach().clone().float() for k, v in m.state_dict().items()} for m in modules]

    @torch.no_grad()
    def update(self, modules, step):
        decay = min(self.decay, (1 + step) / (10 + step))
        for shadow, module in zip(self.shadow, modules):
            for key, value in module.state_dict().items():
                if value.dtype.is_floating_point:
                    shadow[key].mul_(decay).add_(value.float(), alpha=1 - decay)
                else:
                    shadow[key].copy_(value)


def draw_times(batch, max_gap, same_time_prob, device):
    """t ~ U(0, 1); s = t with probability same_time_prob, else t + U(0, max_gap), capped at 1."""
    t = torch.rand(batch, device=device)
    gap = torch.rand(batch, device=device) * max_gap
    gap = torch.where(torch.rand(batch, device=device) < same_time_prob, torch.zeros_like(gap), gap)
    s = torch.minimum(t + gap, torch.ones_like(t))
    return t, s


def training_loss(heavy, light, x0, label, args):
    t, s = draw_times(x0.shape[0], args.max_gap, args.same_time_prob, x0.device)
    x_t = schedule.q_sample(x0, t, torch.randn_like(x0))
    x_s = schedule.q_forward_from(x_t, t, s, torch.randn_like(x0))
    features = heavy(x_s, s, label)
    x0_hat = light(x_t, t, label, features)
    return F.mse_loss(x0_hat.float(), x0)


def save(path, payload):
    tmp = path + ".tmp"
    torch.save(payload, tmp)
    os.replace(tmp, path)  # never leave a half-written checkpoint behind


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    device = pick_device(args.device)
    seed_everything(args.seed)
    cfg = networks.PRESETS[args.preset]
    heavy, light = networks.build_pair(cfg)
    heavy_macs, light_macs = pair_macs(heavy, light, cfg)
    heavy.to(device).train()
    light.to(device).train()
    params = list(heavy.parameters()) + list(light.parameters())
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay, betas=(0.9, 0.99))
    ema = Ema([heavy, light], args.ema_decay)

    images, labels = data.load_split("train", args.data_dir, limit=args.subset)
    images = torch.from_numpy(images).to(device)
    labels = torch.from_numpy(labels).to(device)

    step, trained_seconds = 0, 0.0
    ckpt_path = os.path.join(args.out, "checkpoint.pt")
    if args.resume:
        if not os.path.isfile(ckpt_path):
            raise SystemExit(f"--resume: no checkpoint at {ckpt_path}")
        ckpt = torch.load(ckpt_path, map_location=device)
        heavy.load_state_dict(ckpt["heavy"])
        light.load_state_dict(ckpt["light"])
        optimizer.load_state_dict(ckpt["optimizer"])
        ema.shadow = ckpt["ema"]
        step, trained_seconds = ckpt["step"], ckpt["seconds"]
        torch.set_rng_state(ckpt["rng_cpu"])
        if device.type == "cuda" and ckpt.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng_cuda"])
        print(f"resumed at step {step} ({trained_seconds:.0f} s trained)", flush=True)

    use_bf16 = device.type == "cuda"
    if use_bf16:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    meta = {
        "preset": args.preset, "net": cfg.to_dict(), "batch_size": args.batch_size, "lr": args.lr,
        "warmup_steps": args.warmup_steps, "weight_decay": args.weight_decay, "ema_decay": args.ema_decay,
        "label_dropout": args.label_dropout, "max_gap": args.max_gap, "same_time_prob": args.same_time_prob,
        "seed": args.seed, "subset": args.subset, "loss": "mse(x0)", "pairing": "x_s ~ q(x_s | x_t)",
        "precision": "bf16 autocast" if use_bf16 else "fp32",
    }
    print(f"device={device} torch={torch.__version__} preset={args.preset} heavy={heavy_macs / 1e6:.1f}M MACs "
          f"({param_count(heavy) / 1e6:.2f}M params) light={light_macs / 1e6:.1f}M MACs "
          f"({param_count(light) / 1e6:.3f}M params) ratio={heavy_macs / light_macs:.1f}x", flush=True)

    def checkpoint():
        save(ckpt_path, {
            "heavy": heavy.state_dict(), "light": light.state_dict(), "optimizer": optimizer.state_dict(),
            "ema": ema.shadow, "step": step, "seconds": trained_seconds, "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state() if device.type == "cuda" else None, "meta": meta,
        })
        save(os.path.join(args.out, "weights.pt"), {
            "heavy": ema.shadow[0], "light": ema.shadow[1], "net": cfg.to_dict(), "meta": meta,
            "steps_trained": step, "seconds": trained_seconds, "device": device_name(device),
            "torch_version": str(torch.__version__),
        })

    log = open(os.path.join(args.out, "train-log.jsonl"), "a")
    start = time.time()
    session_start_seconds, session_start_step = trained_seconds, step
    last_ckpt, smoothed = start, None
    n = images.shape[0]
    while step < args.steps and (args.max_seconds is None or trained_seconds < args.max_seconds):
        idx = torch.randint(0, n, (args.batch_size,), device=device)
        x0, label = images[idx], labels[idx]
        drop = torch.rand(label.shape, device=device) < args.label_dropout
        label = torch.where(drop, torch.full_like(label, data.NULL_CLASS), label)
        for group in optimizer.param_groups:
            group["lr"] = args.lr * min(1.0, (step + 1) / args.warmup_steps)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss = training_loss(heavy, light, x0, label, args)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        ema.update([heavy, light], step)
        step += 1
        trained_seconds = session_start_seconds + (time.time() - start)
        if step % args.log_every == 0 or step == args.steps:
            value = loss.item()
            smoothed = value if smoothed is None else 0.9 * smoothed + 0.1 * value
            rate = (step - session_start_step) / max(time.time() - start, 1e-9)
            left = [(args.steps - step) / max(rate, 1e-9)]
            if args.max_seconds is not None:
                left.append(args.max_seconds - trained_seconds)
            print(f"step {step} loss {smoothed:.4f} {rate:.1f} steps/s elapsed {trained_seconds:.0f}s "
                  f"ETA {max(0.0, min(left)):.0f}s", flush=True)
            log.write(json.dumps({"step": step, "loss": value, "seconds": round(trained_seconds, 2)}) + "\n")
            log.flush()
        if time.time() - last_ckpt > args.checkpoint_every:
            checkpoint()
            last_ckpt = time.time()
    checkpoint()
    print(f"done: {step} steps in {trained_seconds:.0f} s; weights at {os.path.join(args.out, 'weights.pt')}",
          flush=True)


def device_name(device):
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({os.cpu_count()} cores)"


if __name__ == "__main__":
    try:
        main()
    except data.DatasetMissingError as error:
        sys.exit(f"error: {error}")
