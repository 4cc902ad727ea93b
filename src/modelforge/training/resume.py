"""`modelforge train CFG --resume RUN_DIR | auto`: find the run, refuse a config that would change it.

A resumed run must end bitwise equal to the run that was never interrupted, so the config
and the data must be the ones it started with. Keys that cannot change the result (how often
to checkpoint) may differ freely; keys that change it in a way people ask for on purpose
(more epochs, another thread count or process count) need `--force`; anything else is refused
with the differing keys listed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modelforge.config import RunConfig, config_to_dict
from modelforge.errors import ConfigError, RunError
from modelforge.files import file_sha256, read_yaml_file
from modelforge.run import claim_run_directory, default_run_dir
from modelforge.training.checkpoint import Checkpoint, load_latest
from modelforge.training.tracking import flatten

NEUTRAL = frozenset({"name", "train.checkpoint_every", "train.checkpoint_budget", "train.keep_checkpoints"})
FORCEABLE = frozenset(
    {
        "train.epochs",
        "train.max_steps",
        "train.early_stopping.patience",
        "train.threads",
        "train.device",
        "train.strategy",
        "train.eval_every",
        "train.eval_batches",
        "world_size",
    }
)
DATA_FILES = ("data.train", "data.valid", "data.test")


def find_run_to_resume(resume: str | Path, out: Path | None, default_dir: Path) -> Path | None:
    """The run directory `--resume` names; for `auto`, the unfinished run to continue or None (start fresh).

    `auto` with `--out DIR` continues DIR when it holds a started run; without `--out`, the newest
    unfinished run under `default_dir`'s folder with the same name prefix.
    """
    if str(resume) != "auto":
        run_dir = Path(resume)
        if not (run_dir / "config.yaml").is_file():
            raise RunError(f"{run_dir}: cannot resume, not a run directory (no config.yaml)")
        if out is not None and out.resolve() != run_dir.resolve():
            raise RunError(f"resume names {run_dir} but the output directory is {out}: give one of them")
        return run_dir
    if out is not None:
        return out if (out / "config.yaml").is_file() else None
    prefix = default_dir.name.rsplit("-", 2)[0] + "-"
    parent = default_dir.parent
    candidates = [
        path
        for path in (parent.iterdir() if parent.is_dir() else [])
        if path.name.startswith(prefix) and (path / "config.yaml").is_file() and not (path / "model.json").exists()
    ]
    return max(candidates, key=lambda path: path.stat().st_mtime) if candidates else None


def check_same_run(
    run_dir: Path, config: RunConfig, world_size: int, saved_world_size: int | None, force: bool
) -> None:
    """Refuse to resume when the config, the data or the process count would change the result."""
    saved = flatten(read_yaml_file(run_dir / "config.yaml", RunError) or {})
    new = flatten(config_to_dict(config))
    differing = {
        key: (saved.get(key), new.get(key))
        for key in sorted(set(saved) | set(new))
        if saved.get(key) != new.get(key) and key not in NEUTRAL and key not in DATA_FILES
    }
    if saved_world_size is not None and saved_world_size != world_size:
        differing["world_size"] = (saved_world_size, world_size)
    changed_data = changed_data_files(run_dir, config)
    refused = [key for key in differing if key not in FORCEABLE] + changed_data
    if not refused and (not differing or force):
        return
    shown = "; ".join(
        [f"{key}: {old!r} → {value!r}" for key, (old, value) in differing.items()]
        + [f"{name}: contents changed" for name in changed_data]
    )
    if refused:
        hint = f"start a new run instead ({', '.join(refused)} would change the result)"
    else:
        hint = "resume with force to accept these changes"
    raise ConfigError(f"{run_dir}: cannot resume, the config differs from the run's: {shown}; {hint}")


def changed_data_files(run_dir: Path, config: RunConfig) -> list[str]:
    """Data files whose sha256 differs from the one recorded when the run started."""
    environment_path = run_dir / "environment.json"
    recorded = json.loads(environment_path.read_text()).get("data", {}) if environment_path.exists() else {}
    files: list[tuple[str, Any]] = [
        ("data.train", config.data.train),
        ("data.valid", config.data.valid),
        ("data.test", config.data.test),
    ]
    changed = []
    for key, value in files:
        if hasattr(value, "source"):  # seq2seq's line-aligned source and target files
            value = [value.source, value.target]
        for path in [p for p in (value if isinstance(value, list) else [value]) if p]:
            if recorded and (path not in recorded or not Path(path).exists() or recorded[path] != file_sha256(path)):
                changed.append(key)
    return changed


def open_run_directory(
    config: RunConfig, out: str | Path | None, resume: str | Path | None, force: bool
) -> tuple[Path, Checkpoint | None]:
    """For single-process recipes: a new run directory (claimed, not created yet), or the run to resume
    and its newest good checkpoint (None when it was stopped before the first one)."""
    name = config.name or f"{config.task}-{config.model.type}"
    found = find_run_to_resume(resume, Path(out) if out else None, default_run_dir(name)) if resume else None
    if found is None:
        return claim_run_directory(out, name), None
    checkpoint = load_latest(found / "checkpoints")
    check_same_run(found, config, 1, checkpoint.meta.get("world_size") if checkpoint else None, force)
    return found, checkpoint
