"""DDP on CPU (gloo): 2 processes match 1 process with the same global batch, and resume under DDP."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from training_runs import REPO, cli_env, mlp_config, start_cli, write_config

from cli_runner import newest_step, signal_when
from modelforge.config import load_config
from modelforge.files import read_jsonl
from modelforge.training.checkpoint import list_checkpoints, read_checkpoint
from modelforge.training.recipe import train


def relative_difference(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def test_two_gloo_processes_match_one_and_resume_under_ddp(tmp_path: Path, breast_cancer_csv: Path) -> None:
    # dropout off: with it, each rank draws its own masks (statistically, not numerically, the same)
    config = mlp_config(breast_cancer_csv, checkpoint_every=5)
    config["model"]["dropout"] = 0.0
    single = train(load_config(config), tmp_path / "single", show_progress=False).path
    config_path = write_config(tmp_path / "run.yaml", config)
    run_dir = tmp_path / "ddp"

    # `modelforge train --nproc 2`, stopped by SIGTERM: every rank finishes its step, rank 0 saves, exit 143
    launcher = start_cli("train", str(config_path), "--nproc", "2", "--out", str(run_dir), "--no-progress")
    signal_when(launcher, lambda: newest_step(run_dir) >= 40, signal.SIGTERM)
    assert launcher.returncode == 143, launcher.stderr
    meta, tensors = read_checkpoint(list_checkpoints(run_dir / "checkpoints")[0])
    assert meta["world_size"] == 2 and {"rank0/torch_rng", "rank1/torch_rng"} <= set(tensors)
    assert not (run_dir / "model.json").exists()

    # `torchrun -m modelforge train --resume` continues it to the end
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    resumed = subprocess.run(
        [*torchrun, "-m", "modelforge", "train", str(config_path), "--resume", str(run_dir), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=cli_env(),
    )
    assert resumed.returncode == 0, resumed.stderr[-1500:]
    assert resumed.stdout.count("run: ") == 1  # one summary, from rank 0

    one, two = read_jsonl(single / "metrics.jsonl"), read_jsonl(run_dir / "metrics.jsonl")
    assert [row["step"] for row in one] == [row["step"] for row in two]
    for key in ("train_loss", "valid_loss"):
        assert relative_difference(one[-1][key], two[-1][key]) < 1e-5, (key, one[-1][key], two[-1][key])
    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert evaluation["steps"] == one[-1]["step"]
    environment = json.loads((run_dir / "environment.json").read_text())
    assert environment["world_size"] == 2 and environment["resumed"][0]["steps"] >= 40
