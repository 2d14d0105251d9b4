"""Exports a distilled few-step student (distill.py's weights.pt) as a model folder the gpu-service loads.

    python3 gpu-service/training/export_student.py --weights runs/mmd-8step/weights.pt \
        --out-dir gpu-service/models/mmd-8step --also-heavy-steps 0

Same files and manifest schema as the teacher's (export.py's export_pair writes them), plus what a student
declares (shared/model-manifest.ts): a one-line `description`, `teacherModelId`, and `supports`: the one step
count it was distilled for, the heavy placements it may run (the one it was trained with, and any given with
--also-heavy-steps, e.g. heavy at step 0 only), guidance 1. `recommended` is the trained placement as
{steps, heavyEvery, guidance: 1}; training.config holds the distillation settings.
"""
import argparse
import os
import sys

import torch

from distill import HeavyStepsError, parse_heavy_steps
from export import export_pair

DISTILLED_GUIDANCE = 1  # distilled at the served guidance: one conditional row per image


def heavy_every(heavy_steps, steps):
    """The K with heavy_steps == [0, K, 2K, ...] below steps (what `recommended.heavyEvery` can express)."""
    for every in range(1, steps + 1):
        if list(range(0, steps, every)) == list(heavy_steps):
            return every
    raise HeavyStepsError(f"heavy steps {heavy_steps} at {steps} steps are not every K-th step; "
                          f"recommended.heavyEvery cannot express them")


def student_support(steps, heavy_steps, also_heavy_steps=()):
    """manifest.supports: the distilled step count, the trained placement first, then the extra ones."""
    placements = [list(heavy_steps)]
    for extra in also_heavy_steps:
        if list(extra) not in placements:
            placements.append(list(extra))
    return {"steps": [steps], "heavySteps": {str(steps): placements}, "guidance": [DISTILLED_GUIDANCE]}


def describe(steps, heavy_steps, teacher_model_id):
    return (f"{steps}-step moment-matching student of {teacher_model_id}, heavy encoder at steps "
            f"{','.join(str(step) for step in heavy_steps)}")


def export_student(weights_path, out_dir, also_heavy_steps=()):
    """Writes the student's model folder; returns its manifest.

    Example:
        export_student("runs/mmd-4step/weights.pt", "gpu-service/models/mmd-4step")
    """
    distillation = torch.load(weights_path, map_location="cpu")["distillation"]
    steps, heavy_steps = distillation["student_steps"], distillation["heavy_steps"]
    extras = [parse_heavy_steps(text, steps) for text in also_heavy_steps]
    recommended = {"steps": steps, "heavyEvery": heavy_every(heavy_steps, steps), "guidance": DISTILLED_GUIDANCE}
    os.makedirs(out_dir, exist_ok=True)
    extra_fields = {
        "description": describe(steps, heavy_steps, distillation["teacher_model_id"]),
        "teacherModelId": distillation["teacher_model_id"],
        "supports": student_support(steps, heavy_steps, extras),
    }
    return export_pair(weights_path, out_dir, None, recommended=recommended, extra_fields=extra_fields,
                       dataset_sha256=distillation["dataset_sha256"])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="weights.pt written by distill.py")
    p.add_argument("--out-dir", required=True, help="the student's model folder, e.g. gpu-service/models/mmd-8step")
    p.add_argument("--also-heavy-steps", action="append", default=[],
                   help="another heavy placement the student may run (comma-separated steps from 0); repeatable")
    args = p.parse_args(argv)
    manifest = export_student(args.weights, args.out_dir, args.also_heavy_steps)
    print(f"exported {manifest['modelId']} to {args.out_dir}: {manifest['description']}; "
          f"supports {manifest['supports']['heavySteps']}")


if __name__ == "__main__":
    try:
        main()
    except HeavyStepsError as error:
        sys.exit(f"error: {error}")
