"""Smoke test: a few training steps on a small subset, then export. Keeps the training code from rotting;
it says nothing about model quality (that is `npm run eval`)."""
import json
import os
import subprocess
import sys

import onnx
import pytest

TRAINING_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TRAINING_DIR)

import data  # noqa: E402
import schedule  # noqa: E402


def run(script, *args):
    return subprocess.run([sys.executable, os.path.join(TRAINING_DIR, script), *args],
                          check=True, capture_output=True, text=True)


def test_trains_a_few_steps_and_exports_a_valid_pair(tmp_path):
    run_dir, model_dir = tmp_path / "run", tmp_path / "models"
    trained = run("train.py", "--preset", "smoke", "--subset", "128", "--steps", "4", "--batch-size", "8",
                  "--log-every", "2", "--device", "cpu", "--out", str(run_dir))
    assert "step 4 loss" in trained.stdout and "steps/s" in trained.stdout and "ETA" in trained.stdout
    resumed = run("train.py", "--preset", "smoke", "--subset", "128", "--steps", "6", "--batch-size", "8",
                  "--device", "cpu", "--out", str(run_dir), "--resume")
    assert "resumed at step 4" in resumed.stdout
    run("train_classifier.py", "--subset", "256", "--epochs", "1", "--device", "cpu", "--out", str(run_dir))
    run("export.py", "--weights", str(run_dir / "weights.pt"), "--classifier", str(run_dir / "classifier.pt"),
        "--out-dir", str(model_dir))

    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["training"]["stepsTrained"] == 6
    assert manifest["classes"] == data.CLASS_NAMES
    for name in ("heavy", "light"):
        spec = manifest["models"][name]
        model = onnx.load(str(model_dir / spec["file"]))
        onnx.checker.check_model(model)
        assert [i.name for i in model.graph.input] == [i["name"] for i in spec["inputs"]]
        assert [o.name for o in model.graph.output] == [o["name"] for o in spec["outputs"]]
        assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
        assert max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) >= 17
    assert (model_dir / "golden.json").is_file()
    assert (model_dir / "evaluator" / "classifier.onnx").is_file()


def test_missing_dataset_names_the_debian_package(tmp_path):
    with pytest.raises(data.DatasetMissingError, match="dataset-fashion-mnist"):
        data.load_split("train", str(tmp_path))


def test_forward_markov_pairing_keeps_the_marginal_of_x_s():
    """x_s built from x_t by q(x_s | x_t) must have the marginal q(x_s | x_0): alpha_s x0 + sigma_s eps."""
    import torch
    torch.manual_seed(0)
    x0 = torch.full((20000, 1, 1, 1), 0.5)
    t, s = torch.full((20000,), 0.3), torch.full((20000,), 0.42)
    x_t = schedule.q_sample(x0, t, torch.randn_like(x0))
    x_s = schedule.q_forward_from(x_t, t, s, torch.randn_like(x0))
    alpha_s, sigma_s = schedule.alpha_sigma(torch.tensor(0.42))
    assert abs(x_s.mean().item() - 0.5 * alpha_s.item()) < 0.01
    assert abs(x_s.std().item() - sigma_s.item()) < 0.01
