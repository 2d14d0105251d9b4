"""Rebuilds the committed teacher pair in PyTorch from its ONNX files, without retraining.

    python3 gpu-service/training/teacher_from_onnx.py --models-dir gpu-service/models --out runs/teacher/weights.pt

The committed models exist only as ONNX (heavy.onnx, light.onnx) with manifest.json and golden.json. This
builds networks.py's modules with the manifest's `training.config.net`, copies every ONNX initialiser into
their state dicts and checks both networks against golden.json's PyTorch outputs. The exporter keeps the
names of Conv/Linear/Embedding weights but lowers GroupNorm to InstanceNormalization followed by a Mul and an
Add whose initialisers it renames (`onnx::Mul_618` of shape [C, 1, 1]); those are found through the graph
(the Mul and Add nodes of the norm's own scope, e.g. `/down0/norm1/Mul`). Every parameter must be matched
exactly once with its shape, and every initialiser used, or the rebuild fails naming what is left over.
`--out` writes weights.pt in train.py's format, which export.py and distill.py read.
"""
import argparse
import base64
import json
import os
import sys
from dataclasses import dataclass

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

import networks

# golden.json's features and x0 came from PyTorch on CPU; the rebuilt nets must agree within this.
DEFAULT_TOLERANCE = 1e-4


class TeacherRebuildError(RuntimeError):
    pass


@dataclass
class Teacher:
    heavy: networks.HeavyEncoder
    light: networks.LightDenoiser
    cfg: networks.NetConfig
    manifest: dict
    golden_errors: dict  # max abs error per golden output ('features', 'x0')

    @property
    def model_id(self):
        return self.manifest["modelId"]


def decode_tensor(entry):
    """golden.json's {dtype, dims, data: base64 little-endian} back to a tensor."""
    dtype = {"float32": "<f4", "int64": "<i8"}[entry["dtype"]]
    array = np.frombuffer(base64.b64decode(entry["data"]), dtype=dtype).reshape(entry["dims"])
    return torch.from_numpy(array.astype(array.dtype.newbyteorder("=")))


def _node_scope(node_name):
    """'/blocks.0/norm1/Mul' -> 'blocks.0.norm1' (the module path the exporter scoped the node under)."""
    parts = node_name.strip("/").split("/")
    return ".".join(parts[:-1])


def _group_norm_affine(graph, initializers, module):
    """{state key: initialiser name} for GroupNorm weights/biases, read from the Mul/Add after each norm.

    torch.onnx lowers GroupNorm(x) * weight + bias to Reshape -> InstanceNormalization -> Reshape -> Mul(w) ->
    Add(b); the Mul and Add live in the norm module's scope and take the affine parameters as [C, 1, 1].
    """
    norms = {name for name, m in module.named_modules() if isinstance(m, nn.GroupNorm)}
    norm_outputs = {}  # scope -> output of its InstanceNormalization, to check the Mul really follows it
    for node in graph.node:
        if node.op_type == "InstanceNormalization":
            norm_outputs[_node_scope(node.name)] = node.output[0]
    producers = {out: node for node in graph.node for out in node.output}
    mapping = {}
    for node in graph.node:
        if node.op_type not in ("Mul", "Add"):
            continue
        scope = _node_scope(node.name)
        params = [name for name in node.input if name in initializers]
        if scope not in norms or len(params) != 1:
            continue
        data_input = next(name for name in node.input if name not in initializers)
        upstream = producers.get(data_input)
        if node.op_type == "Mul":
            # Mul(Reshape(InstanceNormalization(...)), weight)
            if upstream is None or upstream.op_type != "Reshape" or upstream.input[0] != norm_outputs.get(scope):
                raise TeacherRebuildError(f"{node.name}: expected to scale the output of {scope}'s normalisation")
            key = f"{scope}.weight"
        else:
            # Add(Mul(...), bias), the Mul being the scale above
            if upstream is None or upstream.op_type != "Mul" or _node_scope(upstream.name) != scope:
                raise TeacherRebuildError(f"{node.name}: expected to shift the output of {scope}'s scale")
            key = f"{scope}.bias"
        if key in mapping:
            raise TeacherRebuildError(f"two ONNX nodes claim {key}: {mapping[key]} and {params[0]}")
        mapping[key] = params[0]
    return mapping


def state_dict_from_onnx(model_proto, module, label):
    """A state dict for `module` built from the ONNX model's initialisers; fails loudly on any mismatch."""
    graph = model_proto.graph
    initializers = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    expected = module.state_dict()
    mapping = {key: key for key in expected if key in initializers}
    norm_affine = _group_norm_affine(graph, initializers, module)
    for key, name in norm_affine.items():
        if key in mapping:
            raise TeacherRebuildError(f"{label}: {key} is both a named initialiser and a norm's Mul/Add input")
        mapping[key] = name

    missing = sorted(set(expected) - set(mapping))
    unused = sorted(set(initializers) - set(mapping.values()))
    if missing or unused:
        raise TeacherRebuildError(
            f"{label}: could not match the ONNX initialisers to networks.py's parameters "
            f"(is the manifest's training.config.net the net that was exported?); "
            f"parameters without an initialiser: {missing or 'none'}; initialisers left over: {unused or 'none'}")
    state = {}
    for key, name in mapping.items():
        value = torch.from_numpy(np.array(initializers[name]))
        target_shape = expected[key].shape
        # A norm's affine parameter arrives broadcastable, [C, 1, 1]; everything else must match exactly.
        stored_shape = (target_shape[0], 1, 1) if key in norm_affine else target_shape
        if tuple(value.shape) != tuple(stored_shape) or value.dtype != expected[key].dtype:
            raise TeacherRebuildError(f"{label}: {key} is {tuple(target_shape)} {expected[key].dtype} but initialiser "
                                      f"{name} is {tuple(value.shape)} {value.dtype}")
        state[key] = value.reshape(target_shape)
    return state


def golden_max_errors(heavy, light, golden):
    """Max abs difference of the PyTorch pair's outputs from golden.json's (features, then x0 from its features)."""
    heavy_in, light_in = golden["heavy"]["inputs"], golden["light"]["inputs"]
    with torch.no_grad():
        features = heavy(decode_tensor(heavy_in["x_s"]), decode_tensor(heavy_in["s"]), decode_tensor(heavy_in["label"]))
        x0 = light(decode_tensor(light_in["x_t"]), decode_tensor(light_in["t"]), decode_tensor(light_in["label"]),
                   decode_tensor(light_in["features"]))
    return {
        "features": (features - decode_tensor(golden["heavy"]["outputs"]["features"])).abs().max().item(),
        "x0": (x0 - decode_tensor(golden["light"]["outputs"]["x0"])).abs().max().item(),
    }


def load_teacher(models_dir, tolerance=DEFAULT_TOLERANCE):
    """The committed pair in `models_dir` as PyTorch modules (CPU, eval mode), checked against golden.json.

    Example:
        teacher = load_teacher("gpu-service/models")
        features = teacher.heavy(x_s, s, label)
    """
    with open(os.path.join(models_dir, "manifest.json")) as handle:
        manifest = json.load(handle)
    cfg = networks.NetConfig(**manifest["training"]["config"]["net"])
    heavy, light = networks.build_pair(cfg)
    for label, module in (("heavy", heavy), ("light", light)):
        path = os.path.join(models_dir, manifest["models"][label]["file"])
        module.load_state_dict(state_dict_from_onnx(onnx.load(path), module, path))
        module.eval()
    with open(os.path.join(models_dir, manifest["golden"]["file"])) as handle:
        golden = json.load(handle)
    errors = golden_max_errors(heavy, light, golden)
    worst = max(errors.values())
    if not worst <= tolerance:  # also catches NaN
        raise TeacherRebuildError(
            f"{models_dir}: rebuilt teacher differs from golden.json by {worst:.3g} (features {errors['features']:.3g}, "
            f"x0 {errors['x0']:.3g}); tolerance {tolerance:g}")
    return Teacher(heavy=heavy, light=light, cfg=cfg, manifest=manifest, golden_errors=errors)


def teacher_weights(teacher):
    """The teacher as a weights.pt payload in train.py's format (what export.py and distill.py read)."""
    training = teacher.manifest["training"]
    return {
        "heavy": teacher.heavy.state_dict(), "light": teacher.light.state_dict(), "net": teacher.cfg.to_dict(),
        "meta": training["config"], "steps_trained": training["stepsTrained"], "seconds": training["seconds"],
        "device": training["device"], "torch_version": training["torchVersion"],
        "model_id": teacher.model_id, "source": "rebuilt from ONNX by teacher_from_onnx.py",
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models-dir", default="gpu-service/models", help="folder with manifest.json, the ONNX pair, golden.json")
    p.add_argument("--out", default=None, help="write the rebuilt weights here (train.py's weights.pt format)")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, help="largest max abs error allowed")
    args = p.parse_args(argv)
    teacher = load_teacher(args.models_dir, args.tolerance)
    errors = teacher.golden_errors
    print(f"rebuilt {teacher.model_id} from ONNX: max abs error vs golden.json features {errors['features']:.3g}, "
          f"x0 {errors['x0']:.3g} (tolerance {args.tolerance:g})")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        torch.save(teacher_weights(teacher), args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    try:
        main()
    except TeacherRebuildError as error:
        sys.exit(f"error: {error}")
