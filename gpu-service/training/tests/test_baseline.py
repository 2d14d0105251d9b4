"""The compute-matched baseline (issue 9): the `matched` preset costs per step what the dual-rate pair averages
at K=8, it trains as one network (fresh features only) and exports a valid model folder. Says nothing about
its quality (that is `npm run eval` at K=1)."""
import json
import os
import sys

import onnx
import torch

from test_smoke import TRAINING_DIR, run

sys.path.insert(0, TRAINING_DIR)

import networks  # noqa: E402
import schedule  # noqa: E402
import train  # noqa: E402
from macs import pair_macs  # noqa: E402

STEPS, HEAVY_EVERY = 50, 8  # the dual-rate setting the baseline is matched to


def preset_macs(name):
    cfg = networks.PRESETS[name]
    return pair_macs(*networks.build_pair(cfg), cfg)


def dual_rate_macs_per_step():
    """The gpu pair's average per step: the light net every step, the heavy net at steps 0, K, 2K, ..."""
    heavy, light = preset_macs("gpu")
    heavy_calls = len(range(0, STEPS, HEAVY_EVERY))
    return (STEPS * light + heavy_calls * heavy) / STEPS


def test_matched_preset_costs_the_dual_rate_average_per_step_at_k8():
    heavy, light = preset_macs("matched")
    target = dual_rate_macs_per_step()
    assert abs((heavy + light) / target - 1) <= 0.03, f"{(heavy + light) / 1e6:.1f}M vs {target / 1e6:.1f}M MACs"
    assert light == preset_macs("gpu")[1]  # the teacher's light denoiser; only the heavy U-Net is thinned


def test_fresh_features_only_makes_the_heavy_net_read_the_current_state():
    """--same-time-prob 1: s = t and x_s = x_t, so heavy + light are one network evaluated on x_t."""
    torch.manual_seed(0)
    t, s = train.draw_times(1000, 8 / 50, 1.0, "cpu")
    assert torch.equal(s, t)
    x_t = torch.randn(1000, 1, 28, 28)
    assert torch.equal(schedule.q_forward_from(x_t, t, s, torch.randn_like(x_t)), x_t)


def test_trains_a_few_steps_as_one_network_and_exports_a_valid_folder(tmp_path):
    run_dir, model_dir = tmp_path / "run", tmp_path / "matched-baseline"
    trained = run("train.py", "--preset", "matched", "--same-time-prob", "1", "--subset", "128", "--steps", "2",
                  "--batch-size", "4", "--log-every", "1", "--device", "cpu", "--out", str(run_dir))
    assert "preset=matched" in trained.stdout and "step 2 loss" in trained.stdout
    run("export.py", "--weights", str(run_dir / "weights.pt"), "--out-dir", str(model_dir))

    manifest = json.loads((model_dir / "manifest.json").read_text())
    config = manifest["training"]["config"]
    assert (config["preset"], config["same_time_prob"], manifest["training"]["stepsTrained"]) == ("matched", 1.0, 2)
    assert config["net"] == networks.PRESETS["matched"].to_dict()
    per_step = manifest["models"]["heavy"]["macsPerCall"] + manifest["models"]["light"]["macsPerCall"]
    assert per_step == sum(preset_macs("matched"))
    for name in ("heavy", "light"):
        onnx.checker.check_model(onnx.load(str(model_dir / manifest["models"][name]["file"])))
    assert (model_dir / "golden.json").is_file()
