from __future__ import annotations

import json

import torch

from modelforge.compress.distill import DistillationLoss
from modelforge.run import load_run


def test_distillation_loss_is_zero_when_student_matches_teacher_softly() -> None:
    logits = torch.randn(6, 4)
    labels = torch.tensor([0, 1, 2, 3, 0, 1]).float().unsqueeze(1)
    target = torch.cat([labels, logits], dim=1)
    assert DistillationLoss(4.0, 1.0)(logits, target).abs() < 1e-6
    assert DistillationLoss(4.0, 1.0)(logits.flip(0), target) > 0.01
    hard_only = DistillationLoss(4.0, 0.0)(logits, target)
    assert torch.isclose(hard_only, torch.nn.functional.cross_entropy(logits, labels.squeeze(1).long()))


def test_binary_distillation_loss_uses_sigmoid_targets() -> None:
    logits = torch.randn(5, 1)
    target = torch.cat([torch.tensor([[0.0], [1.0], [1.0], [0.0], [1.0]]), logits], dim=1)
    matched = DistillationLoss(2.0, 1.0)(logits, target)
    assert matched < DistillationLoss(2.0, 1.0)(-logits, target)


def test_distill_cli_trains_a_small_student(mlp_run, tmp_path, cli) -> None:
    student = tmp_path / "student.yaml"
    student.write_text("model: {type: mlp, hidden: [8]}\ntrain: {epochs: 3, batch_size: 32, lr: 3.0e-3}\n")
    result = cli("distill", mlp_run, student, "--out", tmp_path / "student", "--temperature", "3")
    assert result.returncode == 0, result.stderr
    assert "of teacher" in result.stdout
    info = json.loads((tmp_path / "student" / "model.json").read_text())
    assert info["parameters"] * 4 <= json.loads((mlp_run / "model.json").read_text())["parameters"]
    assert info["distillation"]["temperature"] == 3.0
    run = load_run(tmp_path / "student")
    assert run.config.data.train == load_run(mlp_run).config.data.train
    assert run.metrics["accuracy"] > 0.8


def test_distill_rejects_a_student_with_other_data(mlp_run, tmp_path, cli, assert_one_line_error) -> None:
    student = tmp_path / "student.yaml"
    student.write_text("data: {train: other.csv, target: y}\nmodel: {type: mlp, hidden: [8]}\n")
    result = cli("distill", mlp_run, student, "--out", tmp_path / "student")
    assert_one_line_error(result, "must match the teacher")
    assert not (tmp_path / "student").exists()
