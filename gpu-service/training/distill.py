"""Moment Matching Distillation of a few-step dual-rate student (Salimans, Mensink, Heek & Hoogeboom 2024,
"Multistep Distillation of Diffusion Models via Moment Matching", arXiv 2406.04103), the alternating variant
(no Jacobian-vector products).

    python3 gpu-service/training/distill.py --student-steps 8 --heavy-steps 0,2,4,6 --max-seconds 300 \
        --out runs/mmd-8step

Three dual-rate pairs: the frozen teacher (the committed ONNX pair, rebuilt by teacher_from_onnx.py), the
student (the few-step sampler being trained) and an auxiliary denoiser; student and auxiliary start as copies
of the teacher. Each iteration:
  1. Rollout: the student samples a batch with the served sampler (gpu-service/src/sampler): ancestral steps
     on t_i = 1 - i/N, x0 clipped to [-1, 1], the heavy encoder only at --heavy-steps, on the state x_i with
     t_i, its features read by the light net at the later steps until the next heavy step. The light net sees
     two states of one trajectory, so its training states must come from this rollout, not from noised data.
     Labels are uniform over the 10 classes and guidance is 1 (one conditional row per image, as served).
  2. Per image a step i: z_t = x_i, t = t_i, and the student's x0 there, x~ (on student iterations recomputed
     with gradient through the heavy call at the step whose features step i reads).
  3. s ~ U(t_{i+1}, t_i) and z_s ~ q(z_s | z_t, x0 = stopgrad(x~)), the sampler's own posterior.
  4. Even iterations fit the auxiliary to the student's conditional mean E[x~ | z_s], regularised towards the
     teacher; odd iterations move the student so the auxiliary's prediction agrees with the teacher's.
Teacher and auxiliary see fresh heavy features at z_s by default, so the targets carry no reuse error: the
student then matches the teacher as sampled with the heavy encoder every step. --target-feature-gap G gives
them instead features of a noisier state of the same trajectory, z_s' ~ q(z_s' | z_s) with s' = s + U(0, G):
the staleness the teacher was trained for and is served with (G = 8/50: heavy every 8 of 50 steps), so the
student matches the teacher as served.

Writes <out>/checkpoint.pt (resumable), <out>/weights.pt (train.py's format plus a "distillation" block; the
student's EMA weights; what export_student.py reads) and <out>/distill-log.jsonl.
"""
import argparse
import copy
import json
import os
import sys
import time

import torch
from torch import nn

import data
import schedule
import teacher_from_onnx
from train import Ema, device_name, pick_device, save, seed_everything

CLIP_X0 = (-1.0, 1.0)  # manifest.schedule.clipX0: the sampler clips every x0 to this range
NUM_CLASSES = len(data.CLASS_NAMES)
METHOD = "moment-matching (alternating)"
PAPER = "Salimans et al. 2024, arXiv 2406.04103"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--student-steps", type=int, default=8, help="N: sampler steps of the student")
    p.add_argument("--heavy-steps", default="0,2,4,6",
                   help="0-based steps at which the student's heavy encoder runs (comma-separated, from 0)")
    p.add_argument("--out", required=True, help="run folder: checkpoint.pt, weights.pt, distill-log.jsonl")
    p.add_argument("--teacher-models-dir", default="gpu-service/models",
                   help="the teacher's model folder (manifest.json, heavy.onnx, light.onnx, golden.json)")
    p.add_argument("--data-dir", default=None,
                   help="Fashion-MNIST IDX folder, to check the teacher's dataset hash against (optional; default: "
                        "Debian's, or $FASHION_MNIST_DIR)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU); default torch's")
    p.add_argument("--max-seconds", type=float, default=None, help="stop after this much distillation time")
    p.add_argument("--steps", type=int, default=1_000_000, help="stop after this many iterations (aux + student)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-4, help="the student's learning rate")
    p.add_argument("--aux-lr", type=float, default=None,
                   help="the auxiliary's learning rate (default --lr): it fits a regression target each update, "
                        "while the student's moment-matching gradient is the noisy one at a small batch")
    p.add_argument("--warmup-steps", type=int, default=100, help="linear learning-rate warm-up, in updates of each net")
    p.add_argument("--ema-decay", type=float, default=0.999, help="EMA of the student's weights; 0 exports the raw ones")
    p.add_argument("--target-feature-gap", type=float, default=0.0,
                   help="teacher and auxiliary targets read heavy features from a state up to this much time "
                        "noisier (0: fresh features; 0.16: the teacher's heavy every 8 of 50 steps; 0.32, heavy every 16: "
                        "the committed students)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    p.add_argument("--checkpoint-every", type=float, default=120.0, help="seconds between checkpoints")
    p.add_argument("--log-every", type=int, default=20, help="iterations between log lines")
    return p.parse_args(argv)


# ---- The student's sampler: time grid, heavy placement, posterior (gpu-service/src/sampler) ----

def student_time_grid(steps):
    """t_i = 1 - i / N for i = 0..N, the last exactly 0 (schedule.ts timestepPairs), float64."""
    return torch.tensor([1 - i / steps for i in range(steps + 1)], dtype=torch.float64)


class HeavyStepsError(ValueError):
    pass


def parse_heavy_steps(text, steps):
    """'0,2,4,6' -> [0, 2, 4, 6]: sorted distinct 0-based steps below N that start at 0 (heavy-schedule.ts)."""
    heavy_steps = [int(part) for part in str(text).replace(" ", "").split(",") if part != ""]
    if not heavy_steps or heavy_steps[0] != 0 or heavy_steps != sorted(set(heavy_steps)) or heavy_steps[-1] >= steps:
        raise HeavyStepsError(f"heavy steps must be sorted distinct indices from 0, below {steps}; got {text!r}")
    return heavy_steps


def feature_source_steps(heavy_steps, steps):
    """For each step i, the heavy step j <= i whose features the light net reads there (the last heavy call)."""
    sources, latest = [], None
    for i in range(steps):
        if i in heavy_steps:
            latest = i
        sources.append(latest)
    return sources


def posterior_coefficients(alpha_bar_t, alpha_bar_s):
    """DDPM posterior q(z_s | z_t, x0) = N(coef_x0 x0 + coef_zt z_t, variance), Ho et al. 2020 eq. 6-7 in
    continuous time with beta = 1 - alpha_bar_t / alpha_bar_s (ancestral-step.ts posteriorCoefficients)."""
    beta = 1 - alpha_bar_t / alpha_bar_s
    return {
        "posterior_mean_coef_x0": alpha_bar_s.sqrt() * beta / (1 - alpha_bar_t),
        "posterior_mean_coef_zt": (alpha_bar_t / alpha_bar_s).sqrt() * (1 - alpha_bar_s) / (1 - alpha_bar_t),
        "posterior_variance": (1 - alpha_bar_s) / (1 - alpha_bar_t) * beta,
    }


def posterior_sample(z_t, x0, t, s, noise):
    """z_s ~ q(z_s | z_t, x0) for per-image times t > s (float64 [B]); `noise` None gives the mean (last step)."""
    coefs = posterior_coefficients(schedule.alpha_bar(t), schedule.alpha_bar(s))
    mean = schedule.expand(coefs["posterior_mean_coef_x0"], x0) * x0 \
        + schedule.expand(coefs["posterior_mean_coef_zt"], z_t) * z_t
    if noise is None:
        return mean
    return mean + schedule.expand(coefs["posterior_variance"].sqrt(), z_t) * noise


def draw_target_times(t, t_next, generator=None):
    """s ~ U(t_next, t] for each image: the moment-matching time inside the student's step (both public
    reimplementations draw t - s ~ U(0, 1/k)). On the grid itself the last step would give s = 0, where
    z_s = x~ and teacher and auxiliary both return x~: no signal for the step that makes the image."""
    u = 1 - torch.rand(t.shape, generator=generator, dtype=torch.float64, device=t.device)  # (0, 1]
    return t - u * (t - t_next)


# ---- Moment matching losses (Salimans et al. 2024, Algorithm 2, alternating) ----

def auxiliary_loss(x_student, x_aux, x_teacher):
    """L(phi) = |x~ - g_A(z_s)|^2 + |g_T(z_s) - g_A(z_s)|^2 (flat weighting w(s) = 1): the auxiliary learns
    the student's conditional mean E[x~ | z_s], pulled towards the teacher where the student gives it little."""
    return ((x_student.detach() - x_aux) ** 2).mean() + ((x_teacher.detach() - x_aux) ** 2).mean()


def student_loss(x_student, x_aux, x_teacher):
    """L(eta) = < x~ , stopgrad(g_A(z_s) - g_T(z_s)) >: its gradient moves the student's samples so that the
    auxiliary's estimate of their conditional mean matches the teacher's (the first moments agree)."""
    return (x_student * (x_aux - x_teacher).detach()).mean()


def moment_gap(x_aux, x_teacher):
    """Mean squared gap between the auxiliary's and the teacher's x0 at z_s: zero when the moments match."""
    return ((x_aux - x_teacher) ** 2).mean()


# ---- The three pairs ----

class DualRatePair(nn.Module):
    """A heavy encoder and a light denoiser as one trainable unit."""

    def __init__(self, heavy, light):
        super().__init__()
        self.heavy = heavy
        self.light = light

    def denoise(self, z, t, label, feature_state, feature_t):
        """x0 at z with the heavy features of `feature_state` at `feature_t` (z and t themselves: fresh)."""
        return self.light(z, t, label, self.heavy(feature_state, feature_t, label))


@torch.no_grad()
def student_rollout(student, label, grid, heavy_steps, generator=None):
    """The served sampler, batched: returns the state x_i at the start of every step [B, N, 1, 28, 28], the
    clipped x0 predicted there [B, N, ...] and the final images. Stage order as ancestral-step.ts: predict x0
    (light net on x_i with the last heavy call's features) -> clip -> posterior mean -> add noise, none on the
    last step."""
    batch, steps = label.shape[0], grid.shape[0] - 1
    device = label.device
    x = torch.randn(batch, 1, 28, 28, generator=generator, device=device)
    states, x0s, features = [], [], None
    for i in range(steps):
        t = torch.full((batch,), float(grid[i]), device=device)
        if i in heavy_steps:
            features = student.heavy(x, t, label)
        x0 = student.light(x, t, label, features).clamp(*CLIP_X0)
        states.append(x)
        x0s.append(x0)
        last = i == steps - 1
        noise = None if last else torch.randn(x.shape, generator=generator, device=device)
        x = posterior_sample(x, x0, grid[i].expand(batch).to(device), grid[i + 1].expand(batch).to(device), noise)
    return torch.stack(states, 1), torch.stack(x0s, 1), x


def stale_feature_state(z_s, s, max_gap, generator=None):
    """The state whose heavy features the targets at z_s read: z_s itself (max_gap 0, fresh), or
    z_s' ~ q(z_s' | z_s) with s' = min(s + U(0, max_gap), 1), drawn forward from z_s as the teacher's reuse
    training drew it (train.py, schedule.q_forward_from), so it is an earlier state of the same trajectory."""
    if max_gap <= 0:
        return z_s, s
    gap = torch.rand(s.shape, generator=generator, dtype=s.dtype, device=s.device) * max_gap
    s_feature = torch.minimum(s + gap, torch.ones_like(s))
    noise = torch.randn(z_s.shape, generator=generator, device=z_s.device)
    return schedule.q_forward_from(z_s, s, s_feature, noise).to(z_s.dtype), s_feature


def mmd_iteration(kind, student, aux, teacher, label, grid, heavy_steps, feature_sources, generator=None,
                  target_feature_gap=0.0):
    """One iteration's loss (kind 'aux' or 'student') and its diagnostics; see the module docstring, 1-5."""
    batch, steps = label.shape[0], grid.shape[0] - 1
    device = label.device
    states, x0s, _ = student_rollout(student, label, grid, heavy_steps, generator)
    rows = torch.arange(batch, device=device)
    step = torch.randint(0, steps, (batch,), generator=generator, device=device)
    source = torch.tensor(feature_sources, device=device)[step]
    grid_d = grid.to(device)
    t, t_next, t_source = grid_d[step], grid_d[step + 1], grid_d[source]
    z_t = states[rows, step]
    if kind == "student":
        # x~ with gradient: the heavy encoder on the state of the step whose features step i reads, with its time.
        features = student.heavy(states[rows, source], t_source.float(), label)
        x_student_raw = student.light(z_t, t.float(), label, features)
        # The loss reads the unclipped prediction so a saturated pixel still gets a gradient; z_s uses the
        # clipped one, as the sampler does.
        x_student = x_student_raw.detach().clamp(*CLIP_X0)
    else:
        x_student = x0s[rows, step]
    s = draw_target_times(t, t_next, generator)
    z_s = posterior_sample(z_t, x_student, t, s, torch.randn(z_t.shape, generator=generator, device=device))
    s32 = s.float()
    # Teacher and auxiliary read the same features (fresh, or one stale state for both), so their gap is the
    # moment gap alone; z_s' adds no information about x beyond z_s (it is z_s plus noise).
    z_feature, s_feature = stale_feature_state(z_s, s, target_feature_gap, generator)
    features_from = (z_feature, s_feature.float())
    with torch.no_grad():
        # guidance 1: the conditional row, clipped
        x_teacher = teacher.denoise(z_s, s32, label, *features_from).clamp(*CLIP_X0)
    if kind == "aux":
        x_aux = aux.denoise(z_s, s32, label, *features_from)
        loss = auxiliary_loss(x_student, x_aux, x_teacher)
    else:
        with torch.no_grad():
            x_aux = aux.denoise(z_s, s32, label, *features_from)
        loss = student_loss(x_student_raw, x_aux.clamp(*CLIP_X0), x_teacher)
    stats = {"moment_gap": moment_gap(x_aux.detach().clamp(*CLIP_X0), x_teacher).item(),
             "x0_std": x_student.std().item()}
    return loss, stats


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


class DatasetMismatchError(RuntimeError):
    pass


def dataset_record(teacher_manifest, data_dir):
    """The dataset hash a student records, and where it came from. The student sees no images (its states are
    its own samples, its targets the teacher's), so its data is the teacher's: the teacher manifest's hash,
    checked against the IDX files when they are on disk (the GPU machine need not carry them)."""
    recorded = teacher_manifest["training"]["datasetSha256"]
    try:
        on_disk = data.dataset_sha256(data_dir)
    except data.DatasetMissingError:
        return recorded, "the teacher's manifest (no Fashion-MNIST files here to check it against)"
    if on_disk != recorded:
        raise DatasetMismatchError(f"the Fashion-MNIST files at {data.data_dir_from(data_dir)} hash to {on_disk}, "
                                   f"but the teacher was trained on {recorded}")
    return recorded, "the teacher's manifest, checked against the IDX files"


def lr_at(update, base_lr, warmup_steps):
    return base_lr * min(1.0, (update + 1) / max(1, warmup_steps))


def adam(params, lr):
    """Adam with beta1 = 0 (no momentum: the auxiliary's target moves with the student, as in GAN training)."""
    return torch.optim.Adam(params, lr=lr, betas=(0.0, 0.99), eps=1e-8)


def main(argv=None):
    args = parse_args(argv)
    heavy_steps = parse_heavy_steps(args.heavy_steps, args.student_steps)
    feature_sources = feature_source_steps(heavy_steps, args.student_steps)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    device = pick_device(args.device)
    seed_everything(args.seed)
    teacher_src = teacher_from_onnx.load_teacher(args.teacher_models_dir)
    dataset_sha, dataset_source = dataset_record(teacher_src.manifest, args.data_dir)
    teacher = DualRatePair(teacher_src.heavy, teacher_src.light).to(device).eval().requires_grad_(False)
    student = copy.deepcopy(teacher).train().requires_grad_(True)
    aux = copy.deepcopy(teacher).train().requires_grad_(True)
    aux_lr = args.lr if args.aux_lr is None else args.aux_lr
    student_opt, aux_opt = adam(student.parameters(), args.lr), adam(aux.parameters(), aux_lr)
    ema = Ema([student.heavy, student.light], args.ema_decay) if args.ema_decay > 0 else None
    grid = student_time_grid(args.student_steps)

    if device.type == "cuda":
        # fp32 weights and activations; TF32 matmuls/convolutions (their rounding is far below the sampling
        # noise of the moment-matching gradient). bf16 would blur the teacher-auxiliary difference.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    meta = {
        "method": METHOD, "paper": PAPER, "teacherModelId": teacher_src.model_id, "net": teacher_src.cfg.to_dict(),
        "student_steps": args.student_steps, "heavy_steps": heavy_steps, "guidance": 1,
        "states": "student rollout (ancestral steps on t_i = 1 - i/N, stale heavy features as served)",
        "target_time": "s ~ U(t_{i+1}, t_i]",
        "targets": ("teacher and auxiliary with fresh heavy features at z_s" if args.target_feature_gap <= 0 else
                    f"teacher and auxiliary with heavy features of z_s' ~ q(z_s' | z_s), s' = s + U(0, "
                    f"{args.target_feature_gap:g})") + ", x0 clipped to [-1, 1]",
        "target_feature_gap": args.target_feature_gap, "weighting": "flat", "labels": "uniform over the 10 classes",
        "batch_size": args.batch_size, "lr": args.lr, "aux_lr": aux_lr, "warmup_steps": args.warmup_steps,
        "adam_betas": [0.0, 0.99],
        "grad_clip": 1.0, "ema_decay": args.ema_decay, "seed": args.seed,
        "precision": "fp32 (TF32 on CUDA)" if device.type == "cuda" else "fp32",
        "teacher_golden_max_abs_error": max(teacher_src.golden_errors.values()),
    }

    step, trained_seconds = 0, 0.0
    ckpt_path = os.path.join(args.out, "checkpoint.pt")
    if args.resume:
        if not os.path.isfile(ckpt_path):
            raise SystemExit(f"--resume: no checkpoint at {ckpt_path}")
        ckpt = torch.load(ckpt_path, map_location=device)
        if ckpt["meta"]["heavy_steps"] != heavy_steps or ckpt["meta"]["student_steps"] != args.student_steps:
            raise SystemExit(f"--resume: {ckpt_path} distils {ckpt['meta']['student_steps']} steps with heavy at "
                             f"{ckpt['meta']['heavy_steps']}, not {args.student_steps} / {heavy_steps}")
        if ckpt["meta"].get("target_feature_gap", 0.0) != args.target_feature_gap:
            raise SystemExit(f"--resume: {ckpt_path} was distilled with --target-feature-gap "
                             f"{ckpt['meta'].get('target_feature_gap', 0.0):g}, not {args.target_feature_gap:g}")
        student.load_state_dict(ckpt["student"])
        aux.load_state_dict(ckpt["aux"])
        student_opt.load_state_dict(ckpt["student_optimizer"])
        aux_opt.load_state_dict(ckpt["aux_optimizer"])
        if ema is not None:
            ema.shadow = ckpt["ema"]
        step, trained_seconds = ckpt["step"], ckpt["seconds"]
        torch.set_rng_state(ckpt["rng_cpu"])
        if device.type == "cuda" and ckpt.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng_cuda"])
        print(f"resumed at iteration {step} ({trained_seconds:.0f} s trained)", flush=True)

    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} teacher={teacher_src.model_id} "
          f"(rebuilt from ONNX, golden max abs error {meta['teacher_golden_max_abs_error']:.3g}) "
          f"student: {args.student_steps} steps, heavy at {heavy_steps}; batch {args.batch_size}, "
          f"lr {args.lr} (auxiliary {aux_lr}); "
          f"dataset sha256 from {dataset_source}", flush=True)

    def student_weights():
        heavy_state, light_state = ema.shadow if ema is not None else (
            student.heavy.state_dict(), student.light.state_dict())
        return {
            "heavy": {k: v.detach().cpu() for k, v in heavy_state.items()},
            "light": {k: v.detach().cpu() for k, v in light_state.items()},
            "net": teacher_src.cfg.to_dict(), "meta": dict(meta, iterations=step, student_updates=step // 2,
                                                          aux_updates=(step + 1) // 2),
            "steps_trained": step, "seconds": trained_seconds, "device": device_name(device),
            "torch_version": str(torch.__version__),
            "distillation": {"student_steps": args.student_steps, "heavy_steps": heavy_steps,
                             "teacher_model_id": teacher_src.model_id, "dataset_sha256": dataset_sha},
        }

    def checkpoint():
        save(ckpt_path, {
            "student": student.state_dict(), "aux": aux.state_dict(), "student_optimizer": student_opt.state_dict(),
            "aux_optimizer": aux_opt.state_dict(), "ema": ema.shadow if ema is not None else None, "step": step,
            "seconds": trained_seconds, "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state() if device.type == "cuda" else None, "meta": meta,
        })
        save(os.path.join(args.out, "weights.pt"), student_weights())

    log = open(os.path.join(args.out, "distill-log.jsonl"), "a" if args.resume else "w")
    start = last_ckpt = time.time()
    session_start_seconds, session_start_step = trained_seconds, step
    window = {"aux": [], "student": [], "moment_gap": []}
    while step < args.steps and (args.max_seconds is None or trained_seconds < args.max_seconds):
        # Alternate (Algorithm 2): even iterations update the auxiliary, odd ones the student.
        kind = "aux" if step % 2 == 0 else "student"
        net, optimizer, base_lr = (aux, aux_opt, aux_lr) if kind == "aux" else (student, student_opt, args.lr)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step // 2, base_lr, args.warmup_steps)
        label = torch.randint(0, NUM_CLASSES, (args.batch_size,), device=device)
        loss, stats = mmd_iteration(kind, student, aux, teacher, label, grid, heavy_steps, feature_sources,
                                    target_feature_gap=args.target_feature_gap)
        if not torch.isfinite(loss):
            raise SystemExit(f"iteration {step}: {kind} loss is {loss.item()}; stopping (last checkpoint kept)")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        if kind == "student" and ema is not None:
            ema.update([student.heavy, student.light], step // 2)
        window[kind].append(loss.item())
        window["moment_gap"].append(stats["moment_gap"])
        step += 1
        trained_seconds = session_start_seconds + (time.time() - start)
        if step % args.log_every == 0 or step == args.steps:
            mean = {k: sum(v) / len(v) if v else None for k, v in window.items()}
            rate = (step - session_start_step) / max(time.time() - start, 1e-9)
            left = args.max_seconds - trained_seconds if args.max_seconds is not None else (args.steps - step) / rate
            print(f"iteration {step} aux_loss {_fmt(mean['aux'], '.5f')} student_loss {_fmt(mean['student'], '.3e')} "
                  f"moment_gap {_fmt(mean['moment_gap'], '.3e')} x0_std {stats['x0_std']:.3f} {rate:.2f} it/s "
                  f"elapsed {trained_seconds:.0f}s ETA {max(0.0, left):.0f}s", flush=True)
            log.write(json.dumps({"iteration": step, "aux_loss": mean["aux"], "student_loss": mean["student"],
                                  "moment_gap": mean["moment_gap"], "x0_std": stats["x0_std"],
                                  "seconds": round(trained_seconds, 2)}) + "\n")
            log.flush()
            window = {k: [] for k in window}
        if time.time() - last_ckpt > args.checkpoint_every:
            checkpoint()
            last_ckpt = time.time()
    checkpoint()
    print(f"done: {step} iterations ({step // 2} student updates) in {trained_seconds:.0f} s; "
          f"weights at {os.path.join(args.out, 'weights.pt')}", flush=True)


if __name__ == "__main__":
    try:
        main()
    except (DatasetMismatchError, teacher_from_onnx.TeacherRebuildError, HeavyStepsError) as error:
        sys.exit(f"error: {error}")
