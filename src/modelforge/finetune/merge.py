"""Fold a LoRA run's adapter into its weights: a new run directory that loads as the plain model.

The merged run has the same config, preprocessing and metrics, `model.lora` removed, and
weights W + (alpha / rank) · B A; its outputs equal the LoRA run's (to float rounding), and
export, serve and init_from treat it like any other run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from modelforge.errors import ModelforgeError
from modelforge.files import atomic_write_bytes, atomic_write_text
from modelforge.finetune.lora import has_lora, merge_lora
from modelforge.finetune.weights import parameter_counts
from modelforge.run import Run, finish_run_directory, load_run, staged_run_directory

COPIED = ("preprocessing.json", "metrics.jsonl")


def merge_run(run_dir: str | Path, out: str | Path) -> Run:
    from safetensors.torch import save

    run = load_run(run_dir)
    if not has_lora(run.model):
        raise ModelforgeError(f"{run_dir}: the run has no LoRA adapter to merge (model.lora is not set)")
    out = Path(out)
    model = merge_lora(run.model)
    with staged_run_directory(out) as dest:
        for name in COPIED:
            if (run.path / name).exists():
                shutil.copyfile(run.path / name, dest / name)
        config = yaml.safe_load((run.path / "config.yaml").read_text())
        config["model"].pop("lora", None)
        atomic_write_text(dest / "config.yaml", yaml.safe_dump(config, sort_keys=False))
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        atomic_write_bytes(dest / "model.safetensors", save(state))
        info = json.loads((run.path / "model.json").read_text())
        info["options"] = {k: v for k, v in info["options"].items() if k != "lora"}
        model.requires_grad_(True)
        info.update(parameter_counts(model), merged_from=str(run.path))
        environment = json.loads((run.path / "environment.json").read_text())
        finish_run_directory(dest, run.metrics, environment, info)
    return load_run(out)
