"""Checkpoints: everything needed to continue a run exactly where it stopped.

    RUN_DIR/checkpoints/step-000000120.safetensors

One file per checkpoint. Tensors (model, optimizer moments, best weights, weight average, torch/CUDA RNG
states, the epoch's running loss) are safetensors; everything else (epoch and batch index,
step, metric history, best metric, scheduler, optimizer hyperparameters, python and numpy
RNG) is JSON in the safetensors header, with a sha256 over both. Nothing is pickled.

Writes are atomic (temp file in the same folder, fsync, rename, folder fsync), so a kill at
any moment leaves the previous checkpoints intact; a truncated or corrupted file fails its
checksum and the previous good one is used, with a warning. The last `keep` checkpoints and
the best epoch's one are kept.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from modelforge.config import TrainConfig
from modelforge.errors import ModelforgeError
from modelforge.files import atomic_write_bytes
from modelforge.training.average import WeightAverage
from modelforge.training.distributed import Topology, full_model_state, full_optimizer_state, load_full_state
from modelforge.training.interrupt import StopSignal

FORMAT = "modelforge-checkpoint/1"
PATTERN = "step-*.safetensors"


class CheckpointError(ModelforgeError):
    """A checkpoint cannot be written, or no readable checkpoint is left."""


class CorruptCheckpoint(CheckpointError):
    """A checkpoint file is truncated, altered or not a checkpoint."""


class CheckpointWarning(UserWarning):
    """A corrupt checkpoint was skipped in favour of an older one."""


@dataclass
class TrainingState:
    """Where the loop stands: what a resumed run needs besides the weights and optimizer."""

    epoch: int = 1  # the epoch in progress (1-based)
    batch: int = 0  # batches of that epoch already consumed
    steps: int = 0  # optimizer steps taken
    history: list[dict[str, Any]] = field(default_factory=list)
    best_value: float | None = None
    best_epoch: int | None = None
    epochs_without_gain: int = 0
    stopped_early: bool = False
    skipped: int = 0  # steps skipped for a non-finite loss (train.on_nonfinite: skip)
    running_loss: float = 0.0  # this rank's loss sum over the epoch (the LM: over the evaluation window)
    seen: int = 0  # rows this rank has trained on this epoch
    sums: dict[str, float] = field(default_factory=dict)  # the epoch's running loss sums, for loops that log several
    best_weights: dict[str, torch.Tensor] | None = None

    PROGRESS = (
        "epoch",
        "batch",
        "steps",
        "history",
        "best_value",
        "best_epoch",
        "epochs_without_gain",
        "stopped_early",
        "skipped",
        "sums",
    )

    def progress(self) -> dict[str, Any]:
        # a copy: the checkpoint is encoded in a background thread while the loop changes history and sums
        return copy.deepcopy({name: getattr(self, name) for name in self.PROGRESS})


@dataclass
class TrainingParts:
    """The live objects a checkpoint captures and restores."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any = None  # an LR scheduler, or None when the loop sets the rate itself
    generators: dict[str, torch.Generator] = field(default_factory=dict)  # e.g. the LM's batch sampler
    # optimizers beside `optimizer`, each stepping its own parameters (a GAN's generator); not under FSDP
    extra_optimizers: list[torch.optim.Optimizer] = field(default_factory=list)
    average: WeightAverage | None = None  # the mean of the weights (train.average_from)


# ----------------------------------------------------------------------------- encoding
def encode(value: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """JSON for `value`, with each tensor moved to `tensors` under a name starting with `prefix`."""
    if isinstance(value, torch.Tensor):
        tensors[prefix] = value
        return {"__tensor__": prefix}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value):
            return {key: encode(item, f"{prefix}/{key}", tensors) for key, item in value.items()}
        return {"__items__": [[key, encode(item, f"{prefix}/{key}", tensors)] for key, item in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(item, f"{prefix}/{i}", tensors) for i, item in enumerate(value)]}
    if isinstance(value, list):
        return [encode(item, f"{prefix}/{i}", tensors) for i, item in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    return value


def decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of `encode`."""
    if isinstance(value, list):
        return [decode(item, tensors) for item in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        return tensors[value["__tensor__"]]
    if "__ndarray__" in value:
        return np.array(value["__ndarray__"], dtype=value["dtype"])
    if "__items__" in value:
        return {key: decode(item, tensors) for key, item in value["__items__"]}
    if "__tuple__" in value:
        return tuple(decode(item, tensors) for item in value["__tuple__"])
    return {key: decode(item, tensors) for key, item in value.items()}


def storable_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous, no shared storage (tied weights): what safetensors accepts."""
    seen: set[tuple[int, int]] = set()
    result = {}
    for name, value in tensors.items():
        value = value.detach().cpu().contiguous()
        key = (value.untyped_storage().data_ptr(), value.storage_offset())
        if value.numel() and key in seen:
            value = value.clone()
        seen.add(key)
        result[name] = value
    return result


def _digest(meta_text: str, tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256(meta_text.encode())
    for name in sorted(tensors):
        value = tensors[name]
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def unprefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors whose names start with `prefix`, named without it."""
    return {name[len(prefix) :]: value for name, value in tensors.items() if name.startswith(prefix)}


# ----------------------------------------------------------------------------- files
def write_checkpoint(path: Path, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    """One self-checking file, written atomically; on failure the error names the cause."""
    from safetensors.torch import save

    tensors = storable_tensors(tensors)
    meta_text = json.dumps(meta)
    blob = save(tensors, metadata={"format": FORMAT, "meta": meta_text, "sha256": _digest(meta_text, tensors)})
    try:
        atomic_write_bytes(path, blob)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        earlier = [p for p in list_checkpoints(path.parent) if p != path]
        exists = (
            f"the newest checkpoint, {earlier[0].name}, is intact (resume with --resume on the run directory)"
            if earlier
            else "there is no earlier checkpoint"
        )
        raise CheckpointError(f"{path}: could not write the checkpoint ({reason}); {exists}") from None


def read_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(JSON state, tensors) of a checkpoint file; CorruptCheckpoint if anything is off."""
    from safetensors.torch import load

    try:
        data = path.read_bytes()
        header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
        metadata = header.get("__metadata__") or {}
        tensors = load(data)
    except Exception as exc:
        raise CorruptCheckpoint(f"{path}: unreadable ({type(exc).__name__}: {str(exc)[:80]})") from None
    if metadata.get("format") != FORMAT or "meta" not in metadata:
        raise CorruptCheckpoint(f"{path}: not a modelforge checkpoint")
    if _digest(metadata["meta"], tensors) != metadata.get("sha256"):
        raise CorruptCheckpoint(f"{path}: checksum mismatch (file altered or damaged)")
    return json.loads(metadata["meta"]), tensors


def checkpoint_name(steps: int) -> str:
    return f"step-{steps:09d}.safetensors"


def list_checkpoints(directory: Path) -> list[Path]:
    """Checkpoint files, newest (most steps) first."""
    return sorted(directory.glob(PATTERN), reverse=True) if directory.is_dir() else []


@dataclass
class Checkpoint:
    """A checkpoint read back from disk, ready to restore into freshly built parts."""

    path: Path
    meta: dict[str, Any]
    tensors: dict[str, torch.Tensor]

    @property
    def steps(self) -> int:
        return int(self.meta["state"]["steps"])

    @property
    def history(self) -> list[dict[str, Any]]:
        """The metric rows logged up to this checkpoint."""
        return list(self.meta["state"]["history"])

    def restore(self, parts: TrainingParts, topology: Topology) -> TrainingState:
        """Load weights, optimizer, scheduler and this rank's RNG into `parts`; return the loop state."""
        meta, tensors = self.meta, self.tensors
        weights = unprefixed(tensors, "model/")
        load_full_state(parts.model, parts.optimizer, weights, decode(meta["optimizer"], tensors))
        if parts.scheduler is not None:
            parts.scheduler.load_state_dict(decode(meta["scheduler"], tensors))
        for name, generator in parts.generators.items():
            generator.set_state(tensors[f"generator/{name}"])
        for optimizer, saved in zip(parts.extra_optimizers, meta.get("extra_optimizers", []), strict=True):
            optimizer.load_state_dict(decode(saved, tensors))
        rank = topology.rank if f"rank{topology.rank}/torch_rng" in tensors else 0
        random.setstate(decode(meta["rng"]["python"], tensors))
        np.random.set_state(decode(meta["rng"]["numpy"], tensors))
        torch.set_rng_state(tensors[f"rank{rank}/torch_rng"])
        if topology.device.type == "cuda" and f"rank{rank}/cuda_rng" in tensors:
            torch.cuda.set_rng_state(tensors[f"rank{rank}/cuda_rng"], topology.device)
        average = unprefixed(tensors, "average/")
        if parts.average is not None and average:
            parts.average.load_state_dict(average)
        best = unprefixed(tensors, "best/")
        return TrainingState(
            **meta["state"],
            running_loss=float(tensors[f"rank{rank}/running_loss"]),
            seen=int(tensors[f"rank{rank}/seen"]),
            best_weights={name: value.to(topology.device) for name, value in best.items()} or None,
        )


def load_latest(directory: Path) -> Checkpoint | None:
    """The newest readable checkpoint; corrupt newer ones are skipped with a warning."""
    files = list_checkpoints(directory)
    problems = []
    for path in files:
        try:
            meta, tensors = read_checkpoint(path)
        except CorruptCheckpoint as exc:
            problems.append(str(exc))
            warnings.warn(f"{exc}; falling back to the previous checkpoint", CheckpointWarning, stacklevel=2)
            continue
        return Checkpoint(path, meta, tensors)
    if files:
        raise CheckpointError(f"{directory}: no readable checkpoint ({'; '.join(problems)})")
    return None


def remove_partial_writes(directory: Path) -> None:
    """Temp files left by a process killed while writing (never read, safe to delete)."""
    for temp in directory.glob(".step-*.tmp"):
        temp.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- capture
def capture(
    parts: TrainingParts, state: TrainingState, topology: Topology
) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
    """Everything to write, gathered on every rank (collectives); None on ranks that do not write."""
    weights = full_model_state(parts.model)
    optimizer_state = full_optimizer_state(parts.model, parts.optimizer)
    per_rank = {
        "torch_rng": topology.gather(torch.get_rng_state()),
        "running_loss": topology.gather(torch.tensor(state.running_loss, dtype=torch.float64, device=topology.device)),
        "seen": topology.gather(torch.tensor(state.seen, dtype=torch.int64, device=topology.device)),
    }
    if topology.device.type == "cuda":
        per_rank["cuda_rng"] = topology.gather(torch.cuda.get_rng_state(topology.device))
    if not topology.is_writer:
        return None
    tensors: dict[str, torch.Tensor] = {f"model/{name}": value for name, value in weights.items()}
    if state.best_weights is not None:
        tensors.update({f"best/{name}": value for name, value in state.best_weights.items()})
    for name, values in per_rank.items():
        tensors.update({f"rank{rank}/{name}": value for rank, value in enumerate(values)})
    tensors.update({f"generator/{name}": generator.get_state() for name, generator in parts.generators.items()})
    if parts.average is not None:
        tensors.update({f"average/{name}": value for name, value in parts.average.state_dict().items()})
    meta = {
        "state": state.progress(),
        "optimizer": encode(optimizer_state, "optimizer", tensors),
        "scheduler": encode(parts.scheduler.state_dict(), "scheduler", tensors) if parts.scheduler else None,
        "extra_optimizers": [
            encode(optimizer.state_dict(), f"extra_optimizers/{i}", tensors)
            for i, optimizer in enumerate(parts.extra_optimizers)
        ],
        "rng": {"python": encode(random.getstate(), "", tensors), "numpy": encode(np.random.get_state(), "", tensors)},
        "world_size": topology.world,
    }
    return meta, tensors


# ----------------------------------------------------------------------------- the loop hook
@dataclass
class Checkpointer:
    """The loop's checkpoint hook: saves every `every_steps` steps, at epoch ends, at the end of
    training, and on SIGTERM/SIGINT (after the current step, then stops the run).

    Epoch-end saves keep within `budget`, a share of training time: one is skipped while the time
    since the last save is under twice that save's cost (blocking + background write) ÷ budget, so
    tiny epochs are not dominated by their checkpoints; budget 1 saves at every epoch end. Any
    checkpoint resumes exactly, so skipping one costs only the steps redone after a kill.

    A save takes a snapshot at once (every rank: it may need collectives) and rank 0 writes it
    in a background thread while training goes on; at most one write is in flight, and its
    error, if any, is raised at the first step after it (or at the next save, or at `close`)."""

    directory: Path
    topology: Topology
    every_steps: int | None = None
    keep: int = 2
    stop: StopSignal = field(default_factory=StopSignal)
    budget: float = 0.05
    extra: dict[str, Any] = field(default_factory=dict)  # run facts stored in every checkpoint
    last_saved: Path | None = None
    best_name: str | None = None
    _writing: threading.Thread | None = field(default=None, repr=False)
    _failure: BaseException | None = field(default=None, repr=False)
    _saved_steps: int | None = field(default=None, repr=False)
    _saved_at: float = field(default=0.0, repr=False)  # perf_counter when the last save returned
    _blocked: float = field(default=0.0, repr=False)  # seconds the last save held the loop up
    _written: float = field(default=0.0, repr=False)  # seconds its background write took

    def __post_init__(self) -> None:
        if self.topology.is_writer:
            self.directory.mkdir(parents=True, exist_ok=True)
            remove_partial_writes(self.directory)

    def resumed_from(self, checkpoint: Checkpoint) -> None:
        self.last_saved, self.best_name = checkpoint.path, checkpoint.meta.get("best_checkpoint")
        self._saved_steps = checkpoint.steps

    def after_step(self, parts: TrainingParts, state: TrainingState, step: Any) -> None:
        self.raise_finished_failure()
        if self.topology.any(self.stop.requested):
            self.save_and_stop(parts, state)
        if self.every_steps and state.steps % self.every_steps == 0:
            self.save(parts, state)

    def after_epoch(self, parts: TrainingParts, state: TrainingState, row: dict[str, Any]) -> None:
        self.raise_finished_failure()
        if self.within_budget():
            self.save(parts, state, best=state.best_epoch is not None and state.best_epoch == row.get("epoch"))
        if self.topology.any(self.stop.requested):
            self.flush()
            self.topology.barrier()
            raise self.stop.interrupted(state.steps, self.last_saved)

    def after_training(self, parts: TrainingParts, state: TrainingState) -> None:
        """The final checkpoint, unless the last save already holds this state."""
        if self._saved_steps != state.steps:
            self.save(parts, state)

    def within_budget(self) -> bool:
        """Whether an epoch-end save now keeps checkpoint time within `budget` of training time.

        A save happens only when every rank finds it due, so all ranks join its collectives."""
        if self.budget <= 0 or self.budget >= 1:
            return self.budget >= 1
        if self._saved_steps is None:
            return True
        # counted twice: the write's disk flush and the writer thread slow the training thread as
        # much again (epochs after a save measured ~15 ms slower for a 15 ms save, 2-core VM)
        cost = 2 * (self._blocked + self._written)
        due = time.perf_counter() - self._saved_at >= cost / self.budget
        return not self.topology.any(not due)

    def save_and_stop(self, parts: TrainingParts, state: TrainingState) -> None:
        self.save(parts, state)
        self.flush()
        self.topology.barrier()  # no rank exits (and makes torchrun kill the others) while rank 0 writes
        raise self.stop.interrupted(state.steps, self.last_saved)

    def save(self, parts: TrainingParts, state: TrainingState, best: bool = False) -> None:
        started = time.perf_counter()
        self._saved_steps = state.steps
        captured = capture(parts, state, self.topology)
        if captured is None:
            self._blocked, self._saved_at = time.perf_counter() - started, time.perf_counter()
            return
        meta, tensors = captured
        path = self.directory / checkpoint_name(state.steps)
        if best:
            self.best_name = path.name
        meta = {**meta, **self.extra, "best_checkpoint": self.best_name}
        snapshot = {name: value.detach().to("cpu", copy=True) for name, value in tensors.items()}
        self.flush()
        self._writing = threading.Thread(target=self._write, args=(path, meta, snapshot), daemon=True)
        self._writing.start()
        self._saved_at = time.perf_counter()
        self._blocked = self._saved_at - started

    def _write(self, path: Path, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        started = time.perf_counter()
        try:
            write_checkpoint(path, meta, tensors)
            self._written = time.perf_counter() - started
            self.last_saved = path
            self._prune()
        except BaseException as exc:  # handed to the training thread by flush()
            self._failure = exc

    def flush(self) -> None:
        """Wait for the checkpoint being written; raise its error if the write failed."""
        if self._writing is not None:
            self._writing.join()
            self._writing = None
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    def raise_finished_failure(self) -> None:
        """Raise a failed write's error as soon as its thread has ended, without waiting for one in flight."""
        if self._writing is not None and not self._writing.is_alive():
            self.flush()

    def close(self) -> None:
        self.flush()

    def _prune(self) -> None:
        keep = {path.name for path in list_checkpoints(self.directory)[: self.keep]} | {self.best_name}
        for path in list_checkpoints(self.directory):
            if path.name not in keep:
                path.unlink(missing_ok=True)


def open_checkpointer(
    run_dir: Path, topology: Topology, cfg: TrainConfig, stop: StopSignal, resume: Checkpoint | None
) -> Checkpointer:
    """A run's checkpoint hook as its train config asks, continuing from `resume` when given."""
    checkpointer = Checkpointer(
        run_dir / "checkpoints", topology, cfg.checkpoint_every, cfg.keep_checkpoints, stop, cfg.checkpoint_budget
    )
    if resume is not None:
        checkpointer.resumed_from(resume)
    return checkpointer
