"""Exports a trained pair (and optionally the evaluator classifier) to ONNX with the manifest and golden vectors.

    python3 gpu-service/training/export.py --weights runs/gpu/weights.pt --classifier runs/gpu/classifier.pt \
        --out-dir gpu-service/models

Writes heavy.onnx, light.onnx, manifest.json (validated by shared/model-manifest.ts in `npm test`),
golden.json (PyTorch inputs/outputs for the onnxruntime parity test) and evaluator/classifier.onnx.
Every ONNX file is checked with the ONNX checker and reloaded before the manifest names it.
"""
import argparse
import base64
import datetime
import hashlib
import inspect
import json
import os
import sys

import numpy as np
import onnx
import torch

import data
import networks
import schedule
from classifier import FEATURE_DIM, Classifier
from macs import count_macs, pair_macs, param_count

OPSET = 17
DEFAULT_RECOMMENDED = {"steps": 50, "heavyEvery": 4, "guidance": 2.0}

HEAVY_IO = {"inputs": ["x_s", "s", "label"], "outputs": ["features"]}
LIGHT_IO = {"inputs": ["x_t", "t", "label", "features"], "outputs": ["x0"]}
CLASSIFIER_IO = {"inputs": ["image"], "outputs": ["logits", "features"]}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="weights.pt written by train.py")
    p.add_argument("--classifier", default=None, help="classifier.pt written by train_classifier.py")
    p.add_argument("--out-dir", default="gpu-service/models")
    p.add_argument("--data-dir", default=None, help="for the dataset hash recorded in the manifest")
    return p.parse_args(argv)


def onnx_export(module, args, path, io_names):
    """torch.onnx.export with a dynamic batch axis on every input and output, on torch 1.13 and 2.x alike."""
    dynamic_axes = {name: {0: "batch"} for name in io_names["inputs"] + io_names["outputs"]}
    options = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        options["dynamo"] = False  # torch >= 2.5 defaults to the dynamo exporter; keep the TorchScript one
    torch.onnx.export(module, args, path, opset_version=OPSET, input_names=io_names["inputs"],
                      output_names=io_names["outputs"], dynamic_axes=dynamic_axes, do_constant_folding=True,
                      **options)
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    return sha256_file(path)


def sha256_file(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def tensor_entry(tensor):
    """A tensor as {dtype, dims, data: base64 of little-endian raw values}, the golden.json encoding."""
    array = tensor.detach().cpu().numpy()
    dtype = {np.dtype("float32"): "float32", np.dtype("int64"): "int64"}[array.dtype]
    raw = array.astype(array.dtype.newbyteorder("<")).tobytes()
    return {"dtype": dtype, "dims": list(array.shape), "data": base64.b64encode(raw).decode("ascii")}


def io_spec(name, dtype, shape):
    return {"name": name, "dtype": dtype, "shape": shape}


def golden_inputs(cfg):
    """Fixed, seeded inputs covering a conditional and a null-label row at different times."""
    generator = torch.Generator().manual_seed(1234)
    x = torch.randn(2, 1, 28, 28, generator=generator).clamp(-3, 3)
    time = torch.tensor([0.9, 0.3])
    label = torch.tensor([7, data.NULL_CLASS], dtype=torch.long)
    return x, time, label


def export_pair(weights_path, out_dir, data_dir, recommended=None, extra_fields=None, dataset_sha256=None):
    """Writes heavy.onnx, light.onnx, golden.json and manifest.json for weights.pt into out_dir.

    `recommended` replaces DEFAULT_RECOMMENDED; `extra_fields` adds top-level manifest fields (a distilled
    student's description, teacherModelId and supports, see export_student.py); `dataset_sha256` stands in
    for hashing the IDX files in data_dir (a student records its teacher's).
    """
    weights = torch.load(weights_path, map_location="cpu")
    cfg = networks.NetConfig(**weights["net"])
    heavy, light = networks.build_pair(cfg)
    heavy.load_state_dict(weights["heavy"])
    light.load_state_dict(weights["light"])
    heavy.eval()
    light.eval()
    heavy_macs, light_macs = pair_macs(heavy, light, cfg)

    x, time, label = golden_inputs(cfg)
    with torch.no_grad():
        features = heavy(x, time, label)
        x0 = light(x, time, label, features)
    heavy_path, light_path = os.path.join(out_dir, "heavy.onnx"), os.path.join(out_dir, "light.onnx")
    heavy_sha = onnx_export(heavy, (x, time, label), heavy_path, HEAVY_IO)
    light_sha = onnx_export(light, (x, time, label, features), light_path, LIGHT_IO)

    golden = {
        "heavy": {"inputs": {"x_s": tensor_entry(x), "s": tensor_entry(time), "label": tensor_entry(label)},
                  "outputs": {"features": tensor_entry(features)}},
        "light": {"inputs": {"x_t": tensor_entry(x), "t": tensor_entry(time), "label": tensor_entry(label),
                             "features": tensor_entry(features)},
                  "outputs": {"x0": tensor_entry(x0)}},
    }
    with open(os.path.join(out_dir, "golden.json"), "w") as handle:
        json.dump(golden, handle)

    image_shape = ["batch", 1, 28, 28]
    feature_shape = ["batch", cfg.feature_channels, 28, 28]
    model_id = "dualrate-" + hashlib.sha256((heavy_sha + light_sha).encode()).hexdigest()[:12]
    manifest = {
        "schemaVersion": 1,
        "modelId": model_id,
        "createdAt": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "image": {"channels": 1, "height": 28, "width": 28},
        "classes": data.CLASS_NAMES,
        "nullClass": data.NULL_CLASS,
        "schedule": {"kind": "cosine", "cosineOffset": schedule.COSINE_OFFSET, "alphaBarMin": schedule.ALPHA_BAR_MIN,
                     "prediction": "x0", "clipX0": [-1, 1]},
        "models": {
            "heavy": {"file": "heavy.onnx", "sha256": heavy_sha, "macsPerCall": heavy_macs,
                      "params": param_count(heavy),
                      "inputs": [io_spec("x_s", "float32", image_shape), io_spec("s", "float32", ["batch"]),
                                 io_spec("label", "int64", ["batch"])],
                      "outputs": [io_spec("features", "float32", feature_shape)]},
            "light": {"file": "light.onnx", "sha256": light_sha, "macsPerCall": light_macs,
                      "params": param_count(light),
                      "inputs": [io_spec("x_t", "float32", image_shape), io_spec("t", "float32", ["batch"]),
                                 io_spec("label", "int64", ["batch"]),
                                 io_spec("features", "float32", feature_shape)],
                      "outputs": [io_spec("x0", "float32", image_shape)]},
        },
        "training": {"config": weights["meta"], "stepsTrained": weights["steps_trained"],
                     "seconds": round(float(weights["seconds"]), 1), "device": weights["device"],
                     "datasetSha256": dataset_sha256 or data.dataset_sha256(data_dir), "torchVersion": weights["torch_version"]},
        "recommended": dict(recommended or DEFAULT_RECOMMENDED),
        "golden": {"file": "golden.json"},
        **(extra_fields or {}),
    }
    with open(os.path.join(out_dir, "manifest.json"), "w") as handle:
        json.dump(manifest, handle, indent=2)
        handle.write("\n")
    return manifest


def export_classifier(classifier_path, out_dir):
    checkpoint = torch.load(classifier_path, map_location="cpu")
    model = Classifier()
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    evaluator_dir = os.path.join(out_dir, "evaluator")
    os.makedirs(evaluator_dir, exist_ok=True)
    path = os.path.join(evaluator_dir, "classifier.onnx")
    sha = onnx_export(model, (torch.zeros(2, 1, 28, 28),), path, CLASSIFIER_IO)
    # Same fields as a manifest model entry, so the TypeScript session module loads it the same way.
    info = {"file": "classifier.onnx", "sha256": sha, "macsPerCall": count_macs(model, torch.zeros(2, 1, 28, 28)),
            "params": param_count(model),
            "inputs": [io_spec("image", "float32", ["batch", 1, 28, 28])],
            "outputs": [io_spec("logits", "float32", ["batch", 10]),
                        io_spec("features", "float32", ["batch", FEATURE_DIM])],
            "testAccuracy": checkpoint["test_accuracy"], "epochs": checkpoint["epochs"],
            "trainSeconds": checkpoint["seconds"], "device": checkpoint["device"],
            "torchVersion": checkpoint["torch_version"]}
    with open(os.path.join(evaluator_dir, "evaluator.json"), "w") as handle:
        json.dump(info, handle, indent=2)
        handle.write("\n")
    return info


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    manifest = export_pair(args.weights, args.out_dir, args.data_dir)
    heavy, light = manifest["models"]["heavy"], manifest["models"]["light"]
    print(f"exported {manifest['modelId']}: heavy {heavy['macsPerCall'] / 1e6:.1f}M MACs, "
          f"light {light['macsPerCall'] / 1e6:.1f}M MACs ({heavy['macsPerCall'] / light['macsPerCall']:.1f}x)")
    if args.classifier:
        info = export_classifier(args.classifier, args.out_dir)
        print(f"exported evaluator classifier (test accuracy {info['testAccuracy']:.4f})")


if __name__ == "__main__":
    try:
        main()
    except data.DatasetMissingError as error:
        sys.exit(f"error: {error}")
