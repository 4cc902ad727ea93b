"""The seq2seq recipe: pairs → split → tokenizers → encoder-decoder → loop → run directory.

Readable top to bottom: read the pairs (a table or two line-aligned files) and split them, fit a
tokenizer per side (or one shared) on the training pairs, encode, build the registered model, then
for each epoch: batches of similar target length in a seeded order → teacher-forced cross-entropy
with label smoothing (padding ignored; bf16 autocast when train.precision resolves to bf16) → backward →
clip → lr (warm-up, then train.schedule) → step;
at the epoch's end the validation loss and the greedy BLEU of `seq2seq.eval_rows` validation pairs,
the best-BLEU epoch's weights kept. At the end the test split (else valid) is decoded with the
configured beam and scored (BLEU, chrF, CER, WER), and the run directory is written, model.json last.

Checkpoints, `--resume` and SIGTERM / SIGINT work as for the other recipes (training/checkpoint.py):
a run killed at any moment and resumed ends with the weights, bitwise, of the run that never stopped.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from modelforge.config import RunConfig, Seq2SeqConfig, TrainConfig
from modelforge.errors import ConfigError
from modelforge.files import append_jsonl, atomic_write_bytes, atomic_write_json
from modelforge.inference import autocast_context, set_cpu_threads
from modelforge.models import build_model
from modelforge.models.seq2seq import BOS, EOS, PAD, Seq2SeqSpec, Seq2SeqTransformer
from modelforge.run import finish_run_directory, start_run_files
from modelforge.seq2seq.data import Pairs, split_pairs
from modelforge.seq2seq.metrics import translation_metrics
from modelforge.seq2seq.run import (
    Seq2SeqRun,
    load_seq2seq_run,
    pad_rows,
    settings_of,
    translate_ids,
)
from modelforge.seq2seq.tokenize import SideTokenizer, fit_tokenizer, load_side_tokenizer, save_side_tokenizer
from modelforge.training.checkpoint import Checkpoint, TrainingParts, TrainingState, open_checkpointer, storable_tensors
from modelforge.training.distributed import Topology
from modelforge.training.interrupt import StopSignal
from modelforge.training.loop import LoopHook, StepInfo, TrainingError, close_epoch, end_training
from modelforge.training.optim import SCHEDULES, build_optimizer
from modelforge.training.probe import batch_signature, settle_auto
from modelforge.training.resume import open_run_directory
from modelforge.training.threads import ThreadChooser

POOL_BATCHES = 50  # batches sorted by length together: little padding, still a shuffled order
SCORED_ROWS = 5000  # held-out pairs decoded for eval.json at the end (`modelforge evaluate --data` scores any number)


# ----------------------------------------------------------------------------- data → tensors
def fit_tokenizers(settings: Seq2SeqConfig, train: Pairs) -> tuple[SideTokenizer, SideTokenizer]:
    """One tokenizer per side fitted on the training pairs, or one shared by both (seq2seq.shared_vocab)."""
    if settings.shared_vocab:  # the config checked that both sides name the same tokenizer
        shared = fit_tokenizer(settings.source_tokenizer, settings.source_vocab, [*train.sources, *train.targets])
        return shared, shared
    source = fit_tokenizer(settings.source_tokenizer, settings.source_vocab, train.sources)
    return source, fit_tokenizer(settings.target_tokenizer, settings.target_vocab, train.targets)


def encode_pairs(
    pairs: Pairs, source: SideTokenizer, target: SideTokenizer, settings: Seq2SeqConfig
) -> tuple[list[list[int]], list[list[int]], int]:
    """Source ids (+ </s>, cut to max_source_tokens), <s> target </s> ids (cut to max_target_tokens),
    and how many pairs were cut."""
    sources, targets, cut = [], [], 0
    for text, translation in zip(pairs.sources, pairs.targets, strict=True):
        ids = [*source.encode(text), EOS]
        target_ids = target.encode(translation)
        if len(ids) > settings.max_source_tokens or len(target_ids) > settings.max_target_tokens - 2:
            cut += 1
        sources.append(ids if len(ids) <= settings.max_source_tokens else [*ids[: settings.max_source_tokens - 1], EOS])
        targets.append([BOS, *target_ids[: settings.max_target_tokens - 2], EOS])
    return sources, targets, int(cut)


def epoch_batches(lengths: np.ndarray, batch_size: int, generator: torch.Generator) -> list[np.ndarray]:
    """Row indices per batch: a seeded shuffle, pools of POOL_BATCHES batches sorted by length, the
    batches of all pools in a seeded order."""
    order = torch.randperm(len(lengths), generator=generator).numpy()
    pool = batch_size * POOL_BATCHES
    batches = []
    for begin in range(0, len(order), pool):
        chunk = order[begin : begin + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    shuffled = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in shuffled]


def pair_loss(model: nn.Module, source: torch.Tensor, target: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Teacher-forced cross-entropy per target token (padding ignored)."""
    logits = model(source, target[:, :-1])
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), target[:, 1:].reshape(-1), ignore_index=PAD,
        label_smoothing=smoothing,
    )  # fmt: skip


@torch.no_grad()
def validation_loss(
    model: nn.Module, sources: Sequence[list[int]], targets: Sequence[list[int]], batch_size: int
) -> float:
    """Mean token cross-entropy (no smoothing) over all validation pairs."""
    model.eval()
    total, count = 0.0, 0
    for begin in range(0, len(sources), batch_size):
        source = pad_rows(sources[begin : begin + batch_size])
        target = pad_rows(targets[begin : begin + batch_size])
        logits = model(source, target[:, :-1])
        gold = target[:, 1:].reshape(-1)
        total += float(
            F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), gold, ignore_index=PAD, reduction="sum")
        )
        count += int((gold != PAD).sum())
    model.train()
    return total / max(count, 1)


# ----------------------------------------------------------------------------- the loop
def fit_seq2seq(
    model: Seq2SeqTransformer,
    train: tuple[list[list[int]], list[list[int]]],
    valid: tuple[list[list[int]], list[list[int]], list[str]],
    decode_valid: Callable[[list[list[int]]], list[str]],
    cfg: TrainConfig,
    *,
    seed: int,
    log_epoch: Callable[[dict[str, Any]], None],
    topology: Topology,
    resume: Checkpoint | None = None,
    hooks: Sequence[LoopHook] = (),
) -> TrainingState:
    """Train for cfg.epochs; returns the loop state (history, best epoch by valid_bleu).

    Each epoch's batches are drawn from `sampler`; its state at the epoch's start is kept too, so a run
    resumed mid-epoch redraws the same batches (as modelforge.generation.recipe does)."""
    sources, targets = train
    lengths = np.array([len(t) for t in targets])
    optimizer = build_optimizer(model, cfg)
    sampler, epoch_start = torch.Generator().manual_seed(seed), torch.Generator()
    parts = TrainingParts(model, optimizer, generators={"sampler": sampler, "epoch_start": epoch_start})
    state = resume.restore(parts, topology) if resume is not None else TrainingState()
    batches_per_epoch = math.ceil(len(sources) / cfg.batch_size)
    total = cfg.max_steps or batches_per_epoch * cfg.epochs
    lr_factor = SCHEDULES.get(cfg.schedule)(cfg, total, batches_per_epoch)
    chooser = ThreadChooser.for_config(cfg, torch.device("cpu"))
    autocast = autocast_context(cfg.precision, torch.device("cpu"))  # bf16 when the probe found it pays
    valid_sources, valid_targets, valid_references = valid

    for epoch in range(state.epoch, cfg.epochs + 1):
        started = time.perf_counter()
        model.train()
        if state.batch == 0:
            epoch_start.set_state(sampler.get_state())
            batches = epoch_batches(lengths, cfg.batch_size, sampler)
        else:  # resumed mid-epoch: the batches drawn at the epoch's start (the sampler has moved past them)
            batches = epoch_batches(lengths, cfg.batch_size, torch.Generator().set_state(epoch_start.get_state()))
        for index in range(state.batch, len(batches)):
            if cfg.max_steps and state.steps >= cfg.max_steps:
                break
            with chooser.timed(state.steps):
                rows = batches[index]
                source, target = pad_rows([sources[i] for i in rows]), pad_rows([targets[i] for i in rows])
                lr = cfg.lr * lr_factor(state.steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                with autocast:
                    loss = pair_loss(model, source, target, cfg.label_smoothing)
                loss_value = loss.item()
                if not math.isfinite(loss_value):
                    raise TrainingError(
                        f"loss is {float(loss)} at step {state.steps + 1}; lower train.lr or add train.grad_clip"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                state.sums["train_loss"] = state.sums.get("train_loss", 0.0) + loss_value
                state.seen += 1
                state.batch, state.steps = index + 1, state.steps + 1
                for hook in hooks:
                    hook.after_step(parts, state, StepInfo(loss_value, None, len(rows), lr))

        row: dict[str, Any] = {
            "epoch": epoch,
            "step": state.steps,
            "train_loss": state.sums.get("train_loss", 0.0) / max(state.seen, 1),
        }
        row["valid_loss"] = validation_loss(model, valid_sources, valid_targets, cfg.batch_size)
        hypotheses = decode_valid(valid_sources)
        row["valid_bleu"] = translation_metrics(hypotheses, valid_references)["bleu"]
        row["lr"] = optimizer.param_groups[0]["lr"]
        row["seconds"] = time.perf_counter() - started
        if chooser.measures:
            row["threads"] = chooser.chosen
        close_epoch(
            parts, state, row, hooks, log_epoch, row["valid_bleu"], lower_is_better=False, keep_weights=cfg.keep_best
        )
        if cfg.max_steps and state.steps >= cfg.max_steps:
            break

    end_training(model, parts, state, hooks)
    return state


# ----------------------------------------------------------------------------- recipe
def train_seq2seq(
    config: RunConfig,
    out: str | Path | None = None,
    *,
    show_progress: bool = False,
    resume: str | Path | None = None,
    force: bool = False,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> Seq2SeqRun:
    """Train as the config says; returns the loaded Seq2SeqRun (`resume`, `force`: as for every recipe;
    `on_epoch(row)` after each epoch's evaluation, e.g. `modelforge tune` reporting to its study)."""
    started = time.time()
    set_cpu_threads(config.train.threads)
    torch.manual_seed(config.seed)
    settings = settings_of(config)
    train, valid, test = split_pairs(config.data, config.seed)
    run_dir, checkpoint = open_run_directory(config, out, resume, force)
    if checkpoint is not None and (run_dir / "source_tokenizer.json").is_file():  # the tokenizers it trained with
        source_tokenizer = load_side_tokenizer(run_dir / "source_tokenizer.json")
        target_tokenizer = load_side_tokenizer(run_dir / "target_tokenizer.json")
    else:
        source_tokenizer, target_tokenizer = fit_tokenizers(settings, train)
    spec = Seq2SeqSpec(source_tokenizer.vocab_size, target_tokenizer.vocab_size)
    torch.manual_seed(config.seed)
    model = build_model(config.model.type, spec, spec.target_vocab, config.model.options())
    longest = max(settings.max_source_tokens, settings.max_target_tokens)
    if model.config.max_positions < longest:
        raise ConfigError(
            f"model.max_positions: {model.config.max_positions} is shorter than seq2seq.max_source_tokens / "
            f"max_target_tokens ({longest})"
        )
    model_info = {
        "type": config.model.type,
        "options": config.model.options(),
        "source_vocab": spec.source_vocab,
        "target_vocab": spec.target_vocab,
        "parameters": sum(p.numel() for p in model.parameters() if p is not None),
    }
    preprocessing = {
        "task": config.task,
        "source": train.source_name,
        "target": train.target_name,
        "source_tokenizer": source_tokenizer.name,
        "target_tokenizer": target_tokenizer.name,
        "shared_vocab": settings.shared_vocab,
        "max_source_tokens": settings.max_source_tokens,
        "max_target_tokens": settings.max_target_tokens,
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    save_side_tokenizer(source_tokenizer, run_dir / "source_tokenizer.json")
    save_side_tokenizer(target_tokenizer, run_dir / "target_tokenizer.json")
    atomic_write_json(run_dir / "preprocessing.json", preprocessing)
    tokenizers = (source_tokenizer, target_tokenizer)
    try:
        splits = (train, valid, test)
        return _train_into(
            run_dir, config, splits, tokenizers, model, model_info, show_progress, started, checkpoint, on_epoch
        )
    except BaseException:
        # a run that never finished keeps what it logged (and its checkpoints) but is marked incomplete
        (run_dir / "model.json").unlink(missing_ok=True)
        raise


def _train_into(
    run_dir: Path,
    config: RunConfig,
    splits: tuple[Pairs, Pairs, Pairs | None],
    tokenizers: tuple[SideTokenizer, SideTokenizer],
    model: Seq2SeqTransformer,
    model_info: dict[str, Any],
    show_progress: bool,
    started: float,
    checkpoint: Checkpoint | None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> Seq2SeqRun:
    from safetensors.torch import save

    from modelforge.training.recipe import start_environment
    from modelforge.training.tracking import open_trackers

    settings = settings_of(config)
    train, valid, test = splits
    source_tokenizer, target_tokenizer = tokenizers
    train_sources, train_targets, cut = encode_pairs(train, source_tokenizer, target_tokenizer, settings)
    valid_sources, valid_targets, _ = encode_pairs(valid, source_tokenizer, target_tokenizer, settings)
    # decoding stops by ratio × source length + a margin: the longest target/source ratio seen in training
    ratio = max((len(t) - 1) / len(s) for s, t in zip(train_sources, train_targets, strict=True))
    preprocessing = json.loads((run_dir / "preprocessing.json").read_text())
    atomic_write_json(run_dir / "preprocessing.json", {**preprocessing, "length_ratio": round(ratio, 4)})
    topology = Topology(device=torch.device("cpu"))
    environment = start_environment(run_dir, config, topology, checkpoint)
    metrics_path = start_run_files(run_dir, config, environment, checkpoint.history if checkpoint else [])
    rows = range(min(config.train.batch_size, len(train_sources)))
    source, target = pad_rows([train_sources[i] for i in rows]), pad_rows([train_targets[i] for i in rows])
    config = settle_auto(
        run_dir,
        config,
        model,
        topology,
        lambda: pair_loss(model, source, target, config.train.label_smoothing),
        batch_signature((source, target)),
        environment,
        show_progress,
    )

    def log_epoch(row: dict[str, Any]) -> None:
        append_jsonl(metrics_path, row)
        if on_epoch is not None:
            on_epoch(row)
        if show_progress:
            print(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)

    def decode_valid(sources: list[list[int]]) -> list[str]:  # greedy: a cheap, monotone stand-in for beam
        ids = translate_ids(
            model, sources[: settings.eval_rows], settings.max_target_tokens, 1, 0.0, length_ratio=ratio
        )
        return [target_tokenizer.decode(row) for row in ids]

    references = valid.targets[: settings.eval_rows]
    steps_per_epoch = math.ceil(len(train_sources) / config.train.batch_size)
    with StopSignal() as stop:
        checkpointer = open_checkpointer(run_dir, topology, config.train, stop, checkpoint)
        purge_step = checkpoint.steps + 1 if checkpoint else None  # a resumed run's curves have no doubles
        trackers = open_trackers(run_dir, config.model_dump(mode="json"), steps_per_epoch, purge_step)
        hooks: list[Any] = [*trackers, checkpointer]  # logs first, so a stop raised by the checkpointer comes after
        try:
            outcome = fit_seq2seq(
                model,
                (train_sources, train_targets),
                (valid_sources, valid_targets, references),
                decode_valid,
                config.train,
                seed=config.seed,
                log_epoch=log_epoch,
                topology=topology,
                resume=checkpoint,
                hooks=hooks,
            )
        finally:
            for hook in hooks:
                hook.close()
    model.eval()
    atomic_write_bytes(run_dir / "model.safetensors", save(storable_tensors(model.state_dict())))

    scored, split = (test, "test") if test is not None else (valid, "valid")
    split_rows = len(scored)
    scored = scored.take(np.arange(min(split_rows, SCORED_ROWS)))  # beam search on CPU: a bounded cost
    scored_sources, _, _ = encode_pairs(scored, source_tokenizer, target_tokenizer, settings)
    decode_started = time.perf_counter()
    ids = translate_ids(
        model, scored_sources, settings.max_target_tokens, settings.beam, settings.length_penalty, length_ratio=ratio
    )
    hypotheses = [target_tokenizer.decode(row) for row in ids]
    decode_seconds = time.perf_counter() - decode_started
    evaluation: dict[str, Any] = {"split": split, **translation_metrics(hypotheses, scored.targets)}
    evaluation["split_rows"] = split_rows  # `n` of them scored (the first SCORED_ROWS)
    evaluation.update(
        beam=settings.beam,
        length_penalty=settings.length_penalty,
        best_epoch=outcome.best_epoch,
        best_valid_bleu=outcome.best_value,
        epochs=len(outcome.history),
        steps=outcome.steps,
        train_pairs=len(train),
        truncated_train_pairs=cut,
        decode_tokens_per_second=sum(len(r) + 1 for r in ids) / max(decode_seconds, 1e-9),
        train_seconds=round(time.time() - started, 3),
    )
    finish_run_directory(run_dir, evaluation, environment, model_info)
    return load_seq2seq_run(run_dir)
