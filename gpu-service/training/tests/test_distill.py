"""The few-step students: the teacher rebuilt from ONNX, the student sampler's math, a few moment-matching
iterations on the real teacher, and the export of a student's model folder. Says nothing about quality (that
is `npm run eval`)."""
import json
import math
import os
import shutil
import subprocess
import sys

import onnx
import pytest
import torch

TRAINING_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(os.path.dirname(TRAINING_DIR))
MODELS_DIR = os.path.join(REPO, "gpu-service", "models")
sys.path.insert(0, TRAINING_DIR)

import distill  # noqa: E402
import export_student  # noqa: E402
import networks  # noqa: E402
import schedule  # noqa: E402
import teacher_from_onnx  # noqa: E402


def run(script, *args):
    return subprocess.run([sys.executable, os.path.join(TRAINING_DIR, script), *args],
                          check=True, capture_output=True, text=True)


def test_rebuilt_teacher_reproduces_golden_json():
    teacher = teacher_from_onnx.load_teacher(MODELS_DIR)
    manifest = json.load(open(os.path.join(MODELS_DIR, "manifest.json")))
    assert teacher.model_id == manifest["modelId"]
    assert teacher.golden_errors["features"] <= 1e-5 and teacher.golden_errors["x0"] <= 1e-5
    params = sum(p.numel() for p in teacher.heavy.parameters())
    assert params == manifest["models"]["heavy"]["params"]


def test_rebuild_names_the_parameters_an_onnx_file_does_not_hold():
    cfg = networks.NetConfig(**json.load(open(os.path.join(MODELS_DIR, "manifest.json")))["training"]["config"]["net"])
    cfg.light_blocks = 3  # one block more than was exported
    light = networks.LightDenoiser(cfg)
    with pytest.raises(teacher_from_onnx.TeacherRebuildError,
                       match=r"parameters without an initialiser: \['blocks\.2\.conv1\.bias'"):
        teacher_from_onnx.state_dict_from_onnx(onnx.load(os.path.join(MODELS_DIR, "light.onnx")), light, "light")


def test_student_grid_and_heavy_placement_follow_the_served_sampler():
    assert distill.student_time_grid(4).tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert distill.feature_source_steps([0, 2, 4, 6], 8) == [0, 0, 2, 2, 4, 4, 6, 6]
    assert distill.feature_source_steps([0], 8) == [0] * 8
    with pytest.raises(distill.HeavyStepsError, match="from 0, below 4"):
        distill.parse_heavy_steps("2,4", 4)


def test_last_step_returns_the_clipped_x0_without_noise():
    """tNext = 0: alpha_bar = 1, so the posterior mean is x0 itself (ancestral-step.ts, last step)."""
    coefs = distill.posterior_coefficients(schedule.alpha_bar(torch.tensor(0.125)), schedule.alpha_bar(torch.tensor(0.0)))
    assert coefs["posterior_mean_coef_x0"].item() == pytest.approx(1.0)
    assert coefs["posterior_mean_coef_zt"].item() == pytest.approx(0.0, abs=1e-12)
    assert coefs["posterior_variance"].item() == pytest.approx(0.0, abs=1e-12)


def test_posterior_sample_keeps_the_marginal_of_z_s():
    """z_t ~ q(z_t | x0), then z_s ~ q(z_s | z_t, x0) must be distributed as q(z_s | x0)."""
    torch.manual_seed(0)
    n = 20000
    x0 = torch.full((n, 1, 1, 1), 0.5)
    t, s = torch.full((n,), 0.6, dtype=torch.float64), torch.full((n,), 0.45, dtype=torch.float64)
    z_t = schedule.q_sample(x0, t, torch.randn_like(x0))
    z_s = distill.posterior_sample(z_t, x0, t, s, torch.randn_like(x0))
    alpha_s, sigma_s = schedule.alpha_sigma(torch.tensor(0.45))
    assert abs(z_s.mean().item() - 0.5 * alpha_s.item()) < 0.01
    assert abs(z_s.std().item() - sigma_s.item()) < 0.01


def test_stale_targets_read_an_earlier_state_of_the_same_trajectory():
    """--target-feature-gap G: the features come from z_s' ~ q(z_s' | z_s) with s <= s' <= min(s + G, 1), so
    z_s' has the marginal q(z_s' | x0) of the noisier time; G = 0 keeps z_s itself (fresh features)."""
    torch.manual_seed(0)
    n = 20000
    x0 = torch.full((n, 1, 1, 1), 0.5)
    s = torch.full((n,), 0.45, dtype=torch.float64)
    z_s = schedule.q_sample(x0, s, torch.randn_like(x0))
    fresh, s_fresh = distill.stale_feature_state(z_s, s, 0.0)
    assert fresh is z_s and s_fresh is s
    z_feature, s_feature = distill.stale_feature_state(z_s, s, 0.16)
    assert z_feature.dtype == z_s.dtype
    assert bool(((s_feature >= s) & (s_feature <= s + 0.16)).all()) and s_feature.std() > 0.04
    alpha, sigma = schedule.alpha_sigma(s_feature.float())
    standardised = (z_feature.flatten() - 0.5 * alpha) / sigma
    assert abs(standardised.mean().item()) < 0.02 and abs(standardised.std().item() - 1) < 0.02


def test_recomputed_student_x0_reads_the_features_of_its_last_heavy_step():
    """What the student trains on (heavy at the feature source step, light at step i) is what it sampled."""
    torch.manual_seed(0)
    heavy, light = networks.build_pair(networks.PRESETS["smoke"])
    pair = distill.DualRatePair(heavy, light).eval()
    grid, heavy_steps = distill.student_time_grid(8), [0, 2, 4, 6]
    label = torch.tensor([1, 7, 3])
    states, x0s, _ = distill.student_rollout(pair, label, grid, heavy_steps)
    sources = distill.feature_source_steps(heavy_steps, 8)
    with torch.no_grad():
        for i in (1, 5, 7):
            j = sources[i]
            features = heavy(states[:, j], torch.full((3,), float(grid[j])), label)
            x0 = light(states[:, i], torch.full((3,), float(grid[i])), label, features).clamp(-1, 1)
            assert torch.allclose(x0, x0s[:, i], atol=1e-6)
            fresh = light(states[:, i], torch.full((3,), float(grid[i])), label,
                          heavy(states[:, i], torch.full((3,), float(grid[i])), label)).clamp(-1, 1)
            assert not torch.allclose(fresh, x0s[:, i], atol=1e-6)  # stale features really differ


def test_support_of_a_four_step_student():
    assert export_student.heavy_every([0, 2], 4) == 2
    assert export_student.student_support(4, [0, 2]) == {"steps": [4], "heavySteps": {"4": [[0, 2]]}, "guidance": [1]}
    with pytest.raises(distill.HeavyStepsError, match="not every K-th step"):
        export_student.heavy_every([0, 1, 3], 4)


def test_distils_a_few_iterations_and_exports_a_valid_student(tmp_path):
    run_dir, model_dir = tmp_path / "run", tmp_path / "mmd-8step"
    distilled = run("distill.py", "--student-steps", "8", "--heavy-steps", "0,2,4,6", "--batch-size", "2",
                    "--steps", "4", "--log-every", "2", "--device", "cpu", "--threads", "1",
                    "--lr", "2e-5", "--aux-lr", "1e-4", "--teacher-models-dir", MODELS_DIR, "--out", str(run_dir))
    assert "iteration 4 aux_loss" in distilled.stdout and "done: 4 iterations (2 student updates)" in distilled.stdout
    for line in (run_dir / "distill-log.jsonl").read_text().splitlines():
        record = json.loads(line)
        assert all(math.isfinite(record[key]) for key in ("aux_loss", "student_loss", "moment_gap"))
    weights = torch.load(run_dir / "weights.pt")
    assert (weights["meta"]["lr"], weights["meta"]["aux_lr"]) == (2e-5, 1e-4)
    assert all(torch.isfinite(v).all() for part in ("heavy", "light") for v in weights[part].values())

    run("export_student.py", "--weights", str(run_dir / "weights.pt"), "--out-dir", str(model_dir),
        "--also-heavy-steps", "0")
    manifest = json.loads((model_dir / "manifest.json").read_text())
    teacher_manifest = json.load(open(os.path.join(MODELS_DIR, "manifest.json")))
    assert manifest["supports"] == {"steps": [8], "heavySteps": {"8": [[0, 2, 4, 6], [0]]}, "guidance": [1]}
    assert manifest["recommended"] == {"steps": 8, "heavyEvery": 2, "guidance": 1}
    assert manifest["teacherModelId"] == teacher_manifest["modelId"]
    assert manifest["description"] == (f"8-step moment-matching student of {teacher_manifest['modelId']}, "
                                       "heavy encoder at steps 0,2,4,6")
    assert manifest["training"]["config"]["method"] == "moment-matching (alternating)"
    assert manifest["training"]["stepsTrained"] == 4
    assert manifest["modelId"] != teacher_manifest["modelId"]
    # The exported student is itself rebuildable from its ONNX files and matches its golden.json.
    student = teacher_from_onnx.load_teacher(str(model_dir))
    assert max(student.golden_errors.values()) <= 1e-5

    if shutil.which("npx") and os.path.isdir(os.path.join(REPO, "node_modules", "tsx")):
        script = ("import { readFileSync } from 'node:fs'; import { parseManifest } from './shared/model-manifest.ts'; "
                  f"parseManifest(readFileSync({json.dumps(str(model_dir / 'manifest.json'))}, 'utf8')); "
                  "console.log('manifest valid')")
        checked = subprocess.run(["npx", "tsx", "-e", script], cwd=REPO, capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
        assert "manifest valid" in checked.stdout


def test_a_resumed_run_ends_with_the_weights_of_one_uninterrupted_run(tmp_path):
    """A committed student is "the run's weights at iteration N": stopping at M < N and resuming (optimizers,
    EMA and the RNG come back from checkpoint.pt) must give the same bits, so scoring snapshots along the way
    does not change what `ITERATIONS=N` reproduces."""
    args = ("--student-steps", "8", "--heavy-steps", "0,2,4,6", "--batch-size", "2", "--device", "cpu",
            "--threads", "1", "--lr", "2e-5", "--aux-lr", "1e-4", "--teacher-models-dir", MODELS_DIR)
    run("distill.py", *args, "--steps", "6", "--out", str(tmp_path / "whole"))
    run("distill.py", *args, "--steps", "3", "--out", str(tmp_path / "staged"))
    resumed = run("distill.py", *args, "--steps", "6", "--resume", "--out", str(tmp_path / "staged"))
    assert "resumed at iteration 3" in resumed.stdout
    whole, staged = (torch.load(tmp_path / name / "weights.pt") for name in ("whole", "staged"))
    assert staged["steps_trained"] == whole["steps_trained"] == 6
    for part in ("heavy", "light"):
        assert all(torch.equal(whole[part][key], staged[part][key]) for key in whole[part])
