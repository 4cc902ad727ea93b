"""Knowledge distillation: a small student learns the teacher's softened outputs plus the labels.

    modelforge distill runs/teacher examples/student.yaml --out runs/student

The student config needs only `model:` and `train:` (data, features, task and seed default to
the teacher's, so both see the same rows and the same test split). The teacher's logits for the
training rows are computed once and packed beside the labels in the training target, so the
ordinary training loop (`train.loop.fit`) runs unchanged with `DistillationLoss`:

    loss = alpha · T² · KL(softmax(teacher / T) ‖ softmax(student / T)) + (1 − alpha) · CE(student, label)
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from modelforge.compress.variant import (
    copy_run_metadata,
    finish_variant,
    inputs_only,
    load_source_run,
    parameter_count,
    run_splits,
    save_weights,
    score_model,
)
from modelforge.errors import ConfigError
from modelforge.files import append_jsonl, atomic_write_text
from modelforge.run import staged_run_directory

INHERITED_KEYS = ("task", "seed", "data", "features")


class DistillationLoss(nn.Module):
    """Soft targets at temperature T plus hard labels; the target packs [label, teacher logits...]."""

    def __init__(self, temperature: float, alpha: float) -> None:
        super().__init__()
        self.temperature, self.alpha = temperature, alpha

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        labels, teacher = target[:, 0], target[:, 1:].to(logits.dtype)
        t = self.temperature
        if logits.shape[-1] == 1:  # binary with one logit: Bernoulli soft targets
            soft = F.binary_cross_entropy_with_logits(logits / t, torch.sigmoid(teacher / t)) * t * t
            hard = F.binary_cross_entropy_with_logits(logits.squeeze(-1), labels.to(logits.dtype))
        else:
            soft = F.kl_div(
                F.log_softmax(logits / t, dim=-1),
                F.log_softmax(teacher / t, dim=-1),
                reduction="batchmean",
                log_target=True,
            ) * (t * t)
            hard = F.cross_entropy(logits, labels.long())
        return self.alpha * soft + (1 - self.alpha) * hard


def student_config(teacher: Any, path: str | Path, overrides: list[str]) -> Any:
    """The student's RunConfig: its own model/train sections, the teacher's data, task and seed."""
    from modelforge.config import apply_overrides, config_to_dict, read_yaml, validate_config

    raw = read_yaml(path)
    teacher_raw = config_to_dict(teacher.config)
    for key in INHERITED_KEYS:
        if key in raw and raw[key] != teacher_raw[key]:
            raise ConfigError(f"{path}: {key}: must match the teacher's (or be left out); the student reuses its data")
        raw[key] = copy.deepcopy(teacher_raw[key])
    return validate_config(apply_overrides(raw, overrides))


def distill(
    teacher_dir: str | Path,
    student_cfg: str | Path,
    out: str | Path,
    temperature: float = 4.0,
    alpha: float = 0.7,
    overrides: list[str] | None = None,
) -> Path:
    """Train the student of `student_cfg` against the teacher run; writes a normal run to `out`."""
    from dataclasses import asdict

    from modelforge.config import config_to_yaml
    from modelforge.inference import forward_in_batches
    from modelforge.models import build_model
    from modelforge.training.loop import fit
    from modelforge.training.mixup import check_blendable
    from modelforge.training.optim import LOSSES, default_loss
    from modelforge.training.recipe import make_scorer, seed_everything

    if temperature <= 0:
        raise ConfigError(f"--temperature: must be > 0, got {temperature}")
    if not 0 <= alpha <= 1:
        raise ConfigError(f"--alpha: must be between 0 and 1, got {alpha}")
    teacher = load_source_run(teacher_dir, "distill")
    config = student_config(teacher, student_cfg, overrides or [])
    splits = run_splits(teacher)
    spec = teacher.preprocessor.input_spec()
    check_blendable(config.train.mixup, spec)
    output_dim = int(teacher.model_info["output_dim"])
    seed_everything(config.seed)
    student = build_model(config.model.type, spec, output_dim, config.model.options())

    teacher_logits = forward_in_batches(teacher.model, inputs_only(splits.train))
    train_set = {**inputs_only(splits.train)}
    train_set["target"] = torch.cat([splits.train["target"].float().unsqueeze(1), teacher_logits.float()], dim=1)
    loss_name = teacher.config.train.loss or default_loss(config.task, len(teacher.preprocessor.classes))
    hard_loss = LOSSES.get(loss_name)()
    scorer = make_scorer(config.task, hard_loss, teacher.preprocessor, config.train.precision, 1024)

    out = Path(out)
    with staged_run_directory(out) as dest:
        copy_run_metadata(teacher.path, dest)
        atomic_write_text(dest / "config.yaml", config_to_yaml(config))
        fit(
            student,
            train_set,
            splits.valid,
            config.train,
            DistillationLoss(temperature, alpha),
            scorer,
            seed=config.seed,
            log_epoch=lambda row: append_jsonl(dest / "metrics.jsonl", row),
            show_progress=False,
        )
        student.to("cpu").eval()
        save_weights(student.state_dict(), dest)
        info = {
            "type": config.model.type,
            "options": config.model.options(),
            "output_dim": output_dim,
            "input_spec": asdict(spec),
            "parameters": parameter_count(student),
            "distillation": {
                "teacher": str(teacher.path.resolve()),
                "teacher_parameters": teacher.model_info.get("parameters"),
                "temperature": temperature,
                "alpha": alpha,
            },
        }
        evaluation = {"split": "test" if splits.test is not None else "valid"}
        evaluation.update(score_model(student, teacher, splits.held_out))
        finish_variant(dest, info, evaluation)
    return out
