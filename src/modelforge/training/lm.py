"""The language-modeling recipe and loop (nanoGPT-like), readable top to bottom.

corpus → token cache (memmap) → GPT → AdamW (decay on matrices only) → for each step:
[accumulate: random windows → autocast forward → loss → backward] → clip → lr (warm-up +
cosine, from the schedule registry) → step → log; every `eval_every` steps: validation loss on `eval_batches` fixed
windows and a text sample. At the end: the whole validation split scored, run directory
written (model.json last).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from modelforge.config import ModelConfig, RunConfig, TrainConfig
from modelforge.errors import ConfigError
from modelforge.files import append_jsonl, atomic_write_bytes
from modelforge.inference import autocast_context, pick_device, set_cpu_threads
from modelforge.models.gpt import GPT, gpt_config
from modelforge.run import finish_run_directory, start_run_files
from modelforge.text.data import TokenData, check_lengths, prepare_tokens, random_windows
from modelforge.text.run import LanguageModelRun, load_language_model_run, sequence_loss
from modelforge.text.tokenizers import save_tokenizer
from modelforge.training.checkpoint import Checkpoint, Checkpointer, TrainingParts, TrainingState, open_checkpointer
from modelforge.training.distributed import Topology, full_model_state, is_sharded, teardown, wrap_model
from modelforge.training.distributed import setup as setup_distributed
from modelforge.training.interrupt import StopSignal
from modelforge.training.loop import TrainingError
from modelforge.training.optim import SCHEDULES, parameter_groups
from modelforge.training.probe import batch_signature, settle_auto
from modelforge.training.recipe import seed_everything
from modelforge.training.threads import ThreadChooser

SAMPLE_TOKENS = 120


# ----------------------------------------------------------------------------- pieces
def lm_model_config(config: RunConfig) -> RunConfig:
    """`model:` left at its default means a GPT with default options; any other family is an error."""
    if "type" not in config.model.model_fields_set and not config.model.options():
        return config.model_copy(update={"model": ModelConfig(type="gpt")})
    if config.model.type != "gpt":
        raise ConfigError(f"model.type: task language-modeling needs gpt, got {config.model.type!r}")
    return config


def total_steps(cfg: TrainConfig, train_tokens: int, context: int) -> int:
    """train.max_steps, else `epochs` passes over the training tokens in windows of `context`."""
    if cfg.max_steps:
        return cfg.max_steps
    per_epoch = max(1, train_tokens // (cfg.batch_size * cfg.grad_accum * context))
    return per_epoch * cfg.epochs


def build_lm_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (the task's one train.optimizer), weight decay on matrices only (norms, biases, embeddings
    exempt), fused kernel."""
    groups = parameter_groups(model, cfg.weight_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, fused=True)


def next_token_loss(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = model(inputs)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))


def use_compile(cfg: TrainConfig, device: torch.device) -> bool:
    """train.compile if set; else on for CUDA, off for CPU (measured: no faster per step, minutes to compile)."""
    return cfg.compile if cfg.compile is not None else device.type == "cuda"


@torch.no_grad()
def estimate_loss(
    model: nn.Module, tokens: np.ndarray, cfg: TrainConfig, context: int, device: torch.device, seed: int
) -> float:
    """Mean loss over `eval_batches` batches of windows drawn with a fixed seed (same every eval)."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    losses = []
    with autocast_context(cfg.precision, device):
        for _ in range(cfg.eval_batches):
            inputs, targets = random_windows(tokens, cfg.batch_size, context, generator)
            losses.append(float(next_token_loss(model, inputs.to(device), targets.to(device))))
    model.train()
    return sum(losses) / len(losses)


class StepProgress:
    """A rich bar with loss and tokens/s on a terminal; nothing otherwise (eval lines go to stderr)."""

    def __init__(self, enabled: bool, steps: int) -> None:
        self._bar: Any = None
        self._next_refresh = 0.0
        if enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("step"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
                TimeRemainingColumn(), transient=True,
            )  # fmt: skip
            self._bar.start()
            self._task = self._bar.add_task("train", total=steps, status="")

    def update(self, step: int, loss: float, tokens_per_second: float) -> None:
        now = time.perf_counter()
        if self._bar is None or now < self._next_refresh:
            return
        self._next_refresh = now + 0.1
        self._bar.update(self._task, completed=step, status=f"loss {loss:.4f} · {tokens_per_second:,.0f} tok/s")

    def line(self, row: dict[str, Any]) -> None:
        shown = "  ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items() if k != "sample"
        )
        (self._bar.console.print if self._bar is not None else lambda s: print(s, file=sys.stderr))(shown)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


@dataclass
class LMOutcome:
    steps: int = 0
    tokens: int = 0
    train_seconds: float = 0.0
    compiled: bool = False

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / max(self.train_seconds, 1e-9)


# ----------------------------------------------------------------------------- recipe
def train_language_model(
    config: RunConfig,
    out: str | Path | None = None,
    show_progress: bool = False,
    resume: str | Path | None = None,
    force: bool = False,
) -> LanguageModelRun:
    """Train a GPT on the config's text; returns the loaded run from its new directory.

    `resume` continues a run (a directory, or "auto") from its newest good checkpoint; the result
    is bitwise the uninterrupted run's (see training/checkpoint.py and training/resume.py). Under torchrun
    every rank calls this (DDP, or FSDP2 with train.strategy: fsdp); rank 0 writes."""
    started = time.time()
    config = lm_model_config(config)
    seed_everything(config.seed)
    set_cpu_threads(config.train.threads)  # "auto": chosen by the probe below; "adaptive": in `fit_language_model`
    topology = setup_distributed(pick_device(config.train.device))  # one process, or a rank under torchrun
    try:
        return _train_on_this_rank(config, out, show_progress, resume, force, topology, started)
    finally:
        teardown(topology)


def _train_on_this_rank(
    config: RunConfig,
    out: str | Path | None,
    show_progress: bool,
    resume: str | Path | None,
    force: bool,
    topology: Topology,
    started: float,
) -> LanguageModelRun:
    from modelforge.training.recipe import run_directory

    run_dir, checkpoint = run_directory(config, out, resume, force, topology)
    data_cfg = config.data
    if not topology.is_writer:
        topology.barrier()  # rank 0 builds the token cache, the others then read it
    data = prepare_tokens(
        data_cfg.train,
        run_dir.resolve().parent / ".token-cache",
        data_cfg.tokenizer,
        data_cfg.vocab_size,
        data_cfg.valid_fraction,
        data_cfg.text_column,
    )
    if topology.is_writer:
        topology.barrier()
    gpt_options = gpt_config(data.tokenizer.vocab_size, config.model.options())
    check_lengths(data, gpt_options.context)
    seed_everything(config.seed)
    model = GPT(gpt_options)
    model_info = {
        "type": "gpt",
        "options": {key: value for key, value in asdict(gpt_options).items() if key != "vocab_size"},
        "vocab_size": data.tokenizer.vocab_size,
        "tokenizer": data_cfg.tokenizer,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if topology.is_writer:
        run_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _train_into(run_dir, config, data, model, model_info, show_progress, started, checkpoint, topology)
    except BaseException:
        if topology.is_writer:
            (run_dir / "model.json").unlink(missing_ok=True)  # an unfinished run stays marked incomplete
        raise


def _train_into(
    run_dir: Path,
    config: RunConfig,
    data: TokenData,
    model: GPT,
    model_info: dict[str, Any],
    show_progress: bool,
    started: float,
    checkpoint: Checkpoint | None = None,
    topology: Topology | None = None,
) -> LanguageModelRun:
    from safetensors.torch import save

    from modelforge.training.recipe import start_environment
    from modelforge.training.tracking import open_trackers

    topology = topology or Topology(device=pick_device(config.train.device))
    environment = start_environment(run_dir, config, topology, checkpoint)
    environment["token_cache"] = {"path": str(data.cache_dir), "reused": data.reused, "tokens": len(data.tokens)}
    metrics_path = run_dir / "metrics.jsonl"
    if topology.is_writer:
        start_run_files(run_dir, config, environment, checkpoint.history if checkpoint else [])
        save_tokenizer(data.tokenizer, run_dir / "tokenizer.json")
    windows = random_windows(data.train, config.train.batch_size, model.config.context, torch.Generator())
    inputs, targets = (t.to(topology.device) for t in windows)
    config = settle_auto(
        run_dir,
        config,
        model,
        topology,
        lambda: next_token_loss(model, inputs, targets),
        batch_signature(inputs),
        environment,
        show_progress,
    )

    with StopSignal() as stop:
        checkpointer = open_checkpointer(run_dir, topology, config.train, stop, checkpoint)
        purge_step = checkpoint.steps + 1 if checkpoint else None  # a resumed run's curves have no doubles
        trackers = open_trackers(run_dir, config.model_dump(mode="json"), 1, purge_step) if topology.is_writer else []

        def log(row: dict[str, Any]) -> None:
            if topology.is_writer:
                append_jsonl(metrics_path, row)
            for tracker in trackers:  # TensorBoard (and MLflow): eval/val_loss, eval/lr, ... at the row's step
                tracker.log_row(row, row["step"], "eval")

        try:
            outcome = fit_language_model(model, data, config, log, show_progress, checkpointer, checkpoint)
        except TrainingError as exc:
            checkpointer.flush()
            raise TrainingError(f"{exc}; last good checkpoint: {checkpointer.last_saved or 'none yet'}") from None
        finally:
            checkpointer.close()
            for tracker in trackers:
                tracker.close()

    weights = full_model_state(model)  # a collective under FSDP
    state = {k: v.contiguous() for k, v in weights.items() if k != "head.weight"}  # tied to the embedding
    if topology.is_writer:
        atomic_write_bytes(run_dir / "model.safetensors", save(state))
    if not is_sharded(model):
        model.to("cpu")
    model.eval()

    val_loss = sequence_loss(model, data.valid, model.config.context, config.train.batch_size)
    evaluation = {
        "split": "valid",
        "val_loss": val_loss,
        "perplexity": math.exp(val_loss),
        "tokens_per_second": outcome.tokens_per_second,
        "steps": outcome.steps,
        "tokens_seen": outcome.tokens,
        "compiled": outcome.compiled,
        "precision": config.train.precision,
        "train_seconds": round(outcome.train_seconds, 3),
        "total_seconds": round(time.time() - started, 3),
    }
    if topology.is_writer:
        finish_run_directory(run_dir, evaluation, environment, model_info)
    topology.barrier()
    return load_language_model_run(run_dir)


# ----------------------------------------------------------------------------- loop
def fit_language_model(
    model: GPT,
    data: TokenData,
    config: RunConfig,
    log: Any,
    show_progress: bool = False,
    checkpointer: Checkpointer | None = None,
    resume: Checkpoint | None = None,
) -> LMOutcome:
    """Train `model` in place on `data.train`; calls `log(row)` after every evaluation.

    With a checkpointer: saves every `train.checkpoint_every` steps, at evaluations (within
    `train.checkpoint_budget`) and at the end, and
    stops cleanly on SIGTERM/SIGINT; `resume` restores weights, optimizer, RNGs and the batch
    sampler, so the run goes on exactly as if it had never stopped."""
    from modelforge.text.generate import Generator

    cfg = config.train
    topology = checkpointer.topology if checkpointer else Topology(device=pick_device(cfg.device))
    device = topology.device
    model.to(device).train()
    trained = wrap_model(model, cfg.strategy, topology, cfg.precision)  # DDP / FSDP2 under torchrun
    rows = topology.shard(torch.arange(cfg.batch_size))  # this rank's windows of each global batch
    context = model.config.context
    steps = total_steps(cfg, len(data.train), context)
    eval_every = cfg.eval_every or max(1, steps // 10)
    optimizer = build_lm_optimizer(model, cfg)
    lr_factor = SCHEDULES.get(cfg.schedule)(cfg, steps, steps)  # warm-up, then cosine to min_lr (or constant)
    autocast = autocast_context(cfg.precision, device)
    compiled = use_compile(cfg, device)
    loss_of = torch.compile(next_token_loss) if compiled else next_token_loss
    batches = torch.Generator().manual_seed(config.seed)
    sampler = Generator(model, data.tokenizer)
    progress = StepProgress(show_progress and topology.is_writer, steps)
    chooser = ThreadChooser.for_config(cfg, device)
    outcome = LMOutcome(compiled=compiled)
    parts = TrainingParts(model, optimizer, generators={"batches": batches})
    state = resume.restore(parts, checkpointer.topology) if resume and checkpointer else TrainingState()
    trained_steps = state.steps - state.skipped
    outcome.steps, outcome.tokens = state.steps, trained_steps * cfg.grad_accum * cfg.batch_size * context
    window_loss, window_steps, window_started = state.running_loss, state.seen, time.perf_counter()

    for step in range(state.steps, steps):
        threads = chooser.threads_for(step)
        torch.set_num_threads(threads)
        step_started = time.perf_counter()
        lr = cfg.lr * lr_factor(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        step_loss = torch.zeros(())
        for _ in range(cfg.grad_accum):
            inputs, targets = random_windows(data.train, cfg.batch_size, context, batches)
            if topology.distributed:
                inputs, targets = inputs[rows], targets[rows]
            with autocast:
                loss = loss_of(trained, inputs.to(device), targets.to(device))
            if topology.distributed:
                loss = loss * topology.batch_weight(len(rows), cfg.batch_size)
            (loss / cfg.grad_accum).backward()
            step_loss += loss.detach().float().cpu() / cfg.grad_accum
        if topology.distributed:
            step_loss = topology.sum(step_loss) / topology.world  # the global batch's mean loss
        finite = math.isfinite(float(step_loss))
        if not finite and cfg.on_nonfinite == "stop":
            raise TrainingError(
                f"loss is {float(step_loss)} at step {step + 1}; lower train.lr, add train.grad_clip "
                "or set train.on_nonfinite: skip"
            )
        if finite:
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)  # a skipped step: no update; schedule and data move on
        chooser.record(step, threads, time.perf_counter() - step_started)
        outcome.steps += 1
        if finite:  # the window's loss and tokens/s count the steps that trained
            outcome.tokens += cfg.grad_accum * cfg.batch_size * context
            window_loss += float(step_loss)
            window_steps += 1
        else:
            state.skipped += 1
        elapsed = outcome.train_seconds + time.perf_counter() - window_started
        progress.update(outcome.steps, float(step_loss), outcome.tokens / max(elapsed, 1e-9))

        if outcome.steps % eval_every == 0 or outcome.steps == steps:
            window_seconds = time.perf_counter() - window_started
            outcome.train_seconds += window_seconds
            val_loss = estimate_loss(model, data.valid, cfg, context, device, config.seed + 1)
            row = {
                "step": outcome.steps,
                "train_loss": window_loss / window_steps if window_steps else math.nan,
                "val_loss": val_loss,
                "lr": lr,
                "tokens_per_second": window_steps * cfg.grad_accum * cfg.batch_size * context / window_seconds,
                "skipped_steps": state.skipped,
                "seconds": round(outcome.train_seconds, 3),
                "threads": chooser.chosen,
                "sample": sampler.generate("", SAMPLE_TOKENS, temperature=1.0, seed=config.seed)
                if math.isfinite(val_loss)
                else "",  # a diverged model (on_nonfinite: skip) has nothing to sample
            }
            if topology.is_writer:
                progress.line(row)
            log(row)
            model.train()
            window_loss, window_steps, window_started = 0.0, 0, time.perf_counter()
            state.history.append(row)
        if checkpointer is not None:
            state.steps = outcome.steps
            state.running_loss, state.seen = window_loss, window_steps
            if outcome.steps % eval_every == 0 or outcome.steps == steps:
                checkpointer.after_epoch(parts, state, {})  # each evaluation closes a checkpointed "epoch"
            else:
                checkpointer.after_step(parts, state, None)
    if checkpointer is not None:
        checkpointer.after_training(parts, state)
    progress.close()
    return outcome
