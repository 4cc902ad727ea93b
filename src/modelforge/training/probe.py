"""`train.precision: auto` and `train.threads: auto`: settings chosen by timing this model on this machine.

CPU flags alone mislead: bf16 matmuls are ~4× faster than fp32 on an AMX Xeon but a small model's
step can still be slower in bf16 (casts and bf16 kernels that lag their fp32 twins), and on a CPU
without native bf16 they are emulated and many times slower. So before training, a probe times a
few forward+backward passes of the model's own first batch in each candidate setting (fp32/bf16 ×
one thread/all threads on a CPU) and picks the fastest; bf16 must beat fp32 by `BF16_MARGIN`, since
it also changes the numbers. The probe leaves no trace: weights, buffers, gradients and random
streams are as they were. Its result is cached per machine and model signature
(`$MODELFORGE_CACHE/auto.json`, default the user cache folder) for a day, apart for a quiet and a
busy machine, so the next run of the same model skips it, and recorded in environment.json under
"auto" (a resumed run reuses that record).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from modelforge.config import RunConfig, TrainConfig
from modelforge.files import atomic_write_json
from modelforge.hardware import machine
from modelforge.inference import autocast_context, native_bf16, resolve_precision, set_cpu_threads
from modelforge.models.memo import Memoizing
from modelforge.training.distributed import Topology

CACHE_ENV = "MODELFORGE_CACHE"
CACHE_DAYS = 1.0  # a machine's load changes which thread count wins: probe again after a day
BF16_MARGIN = 0.9  # bf16 is chosen only when its step takes under 90 % of fp32's
TIMED_STEPS = 3  # per candidate, after one untimed warm-up; the median counts
MAX_ROUNDS, PROBE_SECONDS = 15, 0.3  # a model whose steps take milliseconds gets more samples


@dataclass(frozen=True)
class AutoChoice:
    """What `auto` resolved to, and why: the record environment.json keeps under "auto"."""

    precision: str
    threads: int | None  # None: not chosen here (a fixed count, or not a CPU)
    reason: str
    probe_ms: dict[str, float] = field(default_factory=dict)  # "precision/threads" → median ms per step
    cached: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> AutoChoice:
        return cls(**{key: record[key] for key in ("precision", "threads", "reason", "probe_ms") if key in record})

    def applied_to(self, cfg: TrainConfig) -> TrainConfig:
        """`cfg` with `auto` replaced by the chosen precision and thread count."""
        update: dict[str, Any] = {"precision": self.precision}
        if cfg.threads == "auto":
            update["threads"] = self.threads
        return cfg.model_copy(update=update)

    def summary(self) -> str:
        threads = f", {self.threads} thread{'s' if self.threads != 1 else ''}" if self.threads else ""
        return f"auto: {self.precision}{threads} ({self.reason}{'; cached probe' if self.cached else ''})"


def cache_file() -> Path:
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser() / "auto.json"
    import platformdirs

    return Path(platformdirs.user_cache_dir("modelforge")) / "auto.json"


def choose_settings(
    cfg: TrainConfig,
    model: nn.Module,
    device: torch.device,
    loss_of_batch: Callable[[], torch.Tensor],
    signature: str,
    recorded: dict[str, Any] | None = None,
) -> AutoChoice | None:
    """Resolve `auto` precision and threads for training `model` (None when neither is `auto`).

    `loss_of_batch` computes one training batch's loss (forward only; the probe runs backward);
    `signature` names the batch's shapes. `recorded` is an earlier choice for this run (resume).
    """
    if cfg.precision != "auto" and cfg.threads != "auto":
        return None
    if recorded is not None and _valid(recorded):
        return AutoChoice.from_json(recorded)
    precisions = ["fp32", "bf16"] if cfg.precision == "auto" else [cfg.precision]
    most = torch.get_num_threads()
    threads: list[int | None] = [None]
    if cfg.threads == "auto" and device.type == "cpu":
        threads = [1, most] if most > 1 else [most]
    if cfg.precision == "auto" and not native_bf16(device.type):
        # emulated bf16 runs many times slower than fp32: timing it would only cost the user minutes
        precisions = ["fp32"]
        if len(threads) == 1:
            return AutoChoice("fp32", threads[0], f"no native bf16 on this {device.type} (so bf16 was not timed)")
    candidates = [(precision, count) for precision in precisions for count in threads]
    if len(candidates) == 1:
        precision, count = candidates[0]
        return AutoChoice(precision, count, "the only candidate")

    key = _cache_key(model, device, signature, candidates)
    cached = _read_cache().get(key)
    if _valid(cached) and time.time() - cached.get("measured_at", 0) < CACHE_DAYS * 86400:
        return AutoChoice(**{**AutoChoice.from_json(cached).to_json(), "cached": True})
    timings = _probe(model, device, loss_of_batch, candidates)
    choice = _decide(timings, device)
    _write_cache(key, choice)
    return choice


def _valid(record: Any) -> bool:
    """Whether a cached or recorded choice is one this code wrote (a hand-edited file is probed anew)."""
    return (
        isinstance(record, dict)
        and record.get("precision") in ("fp32", "bf16")
        and (record.get("threads") is None or isinstance(record.get("threads"), int))
        and isinstance(record.get("reason", ""), str)
        and isinstance(record.get("probe_ms", {}), dict)
        and isinstance(record.get("measured_at", 0), int | float)
    )


def _name(precision: str, threads: int | None) -> str:
    return f"{precision}/{threads}" if threads else precision


def _decide(timings: dict[tuple[str, int | None], float], device: torch.device) -> AutoChoice:
    def best(precision: str) -> tuple[tuple[str, int | None], float] | None:
        options = [(key, ms) for key, ms in timings.items() if key[0] == precision]
        return min(options, key=lambda item: item[1]) if options else None

    fp32, bf16 = best("fp32"), best("bf16")
    probe_ms = {_name(*key): round(ms, 3) for key, ms in timings.items()}
    if fp32 is None or (bf16 is not None and bf16[1] < BF16_MARGIN * fp32[1]):
        chosen = bf16 if bf16 is not None else fp32
    else:
        chosen = fp32
    assert chosen is not None
    (precision, threads), ms = chosen
    where = f" at {threads} thread{'s' if threads != 1 else ''}" if threads else ""
    others = ", ".join(f"{name} {value:.1f}" for name, value in probe_ms.items() if name != _name(precision, threads))
    reason = f"fastest forward+backward of this model on this {device.type}{where}: {ms:.1f} ms/step ({others})"
    return AutoChoice(precision, threads, reason, probe_ms)


def _probe(
    model: nn.Module,
    device: torch.device,
    loss_of_batch: Callable[[], torch.Tensor],
    candidates: list[tuple[str, int | None]],
) -> dict[tuple[str, int | None], float]:
    """Median ms per forward+backward for each candidate, interleaved so a busy neighbour hits all alike."""
    samples: dict[tuple[str, int | None], list[float]] = {candidate: [] for candidate in candidates}
    with _untouched(model, device):
        _time_step(model, device, loss_of_batch, *candidates[0])  # one-time costs (lazy init, caches) first
        warmups = {candidate: _time_step(model, device, loss_of_batch, *candidate) for candidate in candidates}
        fastest = min(warmups.values())
        # a candidate whose first step took 4× the fastest's cannot win: no need to time it further
        live = [candidate for candidate in candidates if warmups[candidate] < 4 * fastest]
        started, rounds = time.perf_counter(), 0
        # at least TIMED_STEPS rounds; a fast model gets more (up to MAX_ROUNDS) within PROBE_SECONDS
        while rounds < TIMED_STEPS or (rounds < MAX_ROUNDS and time.perf_counter() - started < PROBE_SECONDS):
            for candidate in live:
                samples[candidate].append(_time_step(model, device, loss_of_batch, *candidate))
            rounds += 1
    return {
        candidate: 1000 * (sorted(times)[len(times) // 2] if times else warmups[candidate])
        for candidate, times in samples.items()
    }


def _time_step(
    model: nn.Module,
    device: torch.device,
    loss_of_batch: Callable[[], torch.Tensor],
    precision: str,
    threads: int | None,
) -> float:
    if threads:
        torch.set_num_threads(threads)
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    with autocast_context(precision, device):
        loss = loss_of_batch()
    loss.float().backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    model.zero_grad(set_to_none=True)
    return seconds


@contextlib.contextmanager
def _untouched(model: nn.Module, device: torch.device) -> Iterator[None]:
    """Weights, buffers (batch-norm statistics), gradients, train/eval mode, threads and RNG as before.

    Memos are suspended (`models.memo.Memoizing`: a frozen encoder's pooled vectors): with them the
    timed steps after the first would be cache hits, timing the head alone while training pays for the
    encoder on every new row (frozen MiniLM: auto took fp32 at 509 samples/s against bf16's 772), and
    the rows the probe saw would keep vectors computed in whichever setting it tried last."""
    state = copy.deepcopy(model.state_dict())
    grads = {name: p.grad for name, p in model.named_parameters()}
    was_training, threads = model.training, torch.get_num_threads()
    model.train()
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), contextlib.ExitStack() as memos:
            for module in model.modules():
                if isinstance(module, Memoizing):
                    memos.enter_context(module.memo_suspended())
            yield
    finally:
        model.load_state_dict(state)
        for name, param in model.named_parameters():
            param.grad = grads[name]
        model.train(was_training)
        torch.set_num_threads(threads)


def _cache_key(model: nn.Module, device: torch.device, signature: str, candidates: list[tuple[str, int | None]]) -> str:
    parameters = [(name, tuple(p.shape), str(p.dtype), p.requires_grad) for name, p in model.named_parameters()]
    identity = {
        "machine": machine(),
        "load": _load_class(),
        "device": device.type,
        "model": type(model).__name__,
        "parameters": hashlib.sha256(repr(parameters).encode()).hexdigest(),
        "batch": signature,
        "candidates": candidates,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _load_class() -> str:
    """`busy` while other work holds half the cores or more, else `quiet`: which thread count wins
    depends on it, so each has its own cache entry (the first probe of a busy day is not reused all day)."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return "unknown"
    return "busy" if load >= 0.5 * (os.cpu_count() or 1) else "quiet"


def _read_cache() -> dict[str, Any]:
    try:
        data = json.loads(cache_file().read_text())
    except (OSError, ValueError):
        return {}  # no cache yet, or an unreadable one: probe again (and rewrite it)
    return data if isinstance(data, dict) else {}


def _write_cache(key: str, choice: AutoChoice) -> None:
    path = cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {**_read_cache(), key: {**choice.to_json(), "measured_at": time.time()}})
    except OSError:
        pass  # a read-only cache folder only costs the next run another probe


def batch_signature(batch: dict[str, torch.Tensor] | torch.Tensor | tuple | list) -> str:
    """Shapes and dtypes of a batch, the part of the probe's cache key that the model's weights don't tell."""
    if isinstance(batch, torch.Tensor):
        return f"{tuple(batch.shape)}:{batch.dtype}"
    if isinstance(batch, dict):
        return ";".join(f"{key}={batch_signature(value)}" for key, value in sorted(batch.items()))
    if isinstance(batch, tuple | list):
        return ",".join(batch_signature(value) for value in batch)
    return type(batch).__name__


def settle_auto(
    run_dir: Path,
    config: RunConfig,
    model: nn.Module,
    topology: Topology,
    loss_of_batch: Callable[[], torch.Tensor],
    signature: str,
    environment: dict[str, Any],
    show: bool,
    tunes_precision: bool = True,
) -> RunConfig:
    """`config` with train.precision / train.threads `auto` resolved for this run; the choice goes into
    `environment["auto"]` and the run's environment.json at once (a run resumed after a crash reuses it
    from there, not a new probe's choice), the thread count is applied, and the
    choice is printed with the progress lines when `show`. A task whose loop always trains in fp32
    passes `tunes_precision=False`: only the thread count is probed."""
    cfg = config.train if tunes_precision else config.train.model_copy(update={"precision": "fp32"})
    if cfg.precision != "auto" and cfg.threads != "auto":
        return config
    model.to(topology.device)
    if topology.world > 1:  # every rank must agree, and timing each would disagree: GPUs take bf16, CPUs fp32
        cuda = topology.device.type == "cuda"
        precision = resolve_precision(cfg.precision, topology.device) if cuda else cfg.precision.replace("auto", "fp32")
        reason = f"{topology.world} processes: not timed (bf16 on a GPU that has it, else fp32)"
        choice: AutoChoice | None = AutoChoice(precision, None, reason)
    else:
        choice = choose_settings(cfg, model, topology.device, loss_of_batch, signature, environment.get("auto"))
    assert choice is not None
    environment["auto"] = choice.to_json()
    if topology.is_writer:
        atomic_write_json(run_dir / "environment.json", environment)
    resolved = choice.applied_to(cfg)
    set_cpu_threads(resolved.threads)
    if show and topology.is_writer:
        print(choice.summary(), file=sys.stderr, flush=True)
    return config.model_copy(update={"train": resolved})
