"""The speech-recognition recipe: table → split → log-mel frames → characters → CTC model → loop → run.

Readable top to bottom: read the clips and split them, decide the sample rate (speech.sample_rate, else
the training clips' most common), compute every clip's log-mel frames once, collect the training
transcripts' characters (index 0 the CTC blank), build the registered model, then for each epoch:
batches of similar length in a seeded order → forward (bf16 autocast when train.precision resolves to
bf16) → CTC loss on fp32 log-probabilities (impossible alignments zeroed) → backward → clip → lr
(warm-up, then train.schedule) → step; at the epoch's end the beam-1 CER and WER of the validation
clips, the best-CER epoch's weights kept. At the end the test split (else valid) is decoded with
speech.beam and scored, and the run directory is written, model.json last.

Checkpoints, `--resume` and SIGTERM / SIGINT work as for the other recipes (training/checkpoint.py):
a run killed at any moment and resumed ends with the weights, bitwise, of the run that never stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from modelforge.config import RunConfig, SpeechConfig, TrainConfig
from modelforge.data.audio import SPECTROGRAM_AUGMENT, audio_augmenter
from modelforge.files import append_jsonl, atomic_write_bytes, atomic_write_json
from modelforge.inference import autocast_context, set_cpu_threads
from modelforge.models import build_model
from modelforge.models.speech import SpeechSpec
from modelforge.run import finish_run_directory, start_run_files
from modelforge.speech.data import clips_features, most_common_rate, split_clips, training_features
from modelforge.speech.metrics import speech_metrics
from modelforge.speech.run import SpeechRun, load_speech_run, pad_features, settings_of, transcribe_features
from modelforge.speech.tokens import BLANK, Characters, fit_characters, load_characters, save_characters
from modelforge.training.average import WeightAverage, scored_model
from modelforge.training.checkpoint import Checkpoint, TrainingParts, TrainingState, open_checkpointer, storable_tensors
from modelforge.training.distributed import Topology
from modelforge.training.interrupt import StopSignal
from modelforge.training.loop import LoopHook, StepInfo, TrainingError, close_epoch, end_training
from modelforge.training.mixup import Blend, draw_blend
from modelforge.training.optim import SCHEDULES, build_optimizer
from modelforge.training.probe import batch_signature, settle_auto
from modelforge.training.resume import open_run_directory
from modelforge.training.threads import ThreadChooser

POOL_BATCHES = 50  # batches sorted by length together: little padding, still a shuffled order

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # features, lengths, targets, target lengths


@dataclass(frozen=True)
class SpeechAugment:
    """speech.augment made ready: each training clip's rendered recordings and the batch spectrogram
    transform (None: none asked for)."""

    renderings: list[list[np.ndarray]] = field(default_factory=list)
    spectrogram: Callable[[torch.Tensor], torch.Tensor] | None = None

    @classmethod
    def of(cls, settings: SpeechConfig, renderings: list[list[np.ndarray]]) -> SpeechAugment:
        if settings.augment is None:
            return cls(renderings)
        options = settings.augment.model_dump()
        return cls(renderings, audio_augmenter(**{key: options[key] for key in SPECTROGRAM_AUGMENT}))


# ----------------------------------------------------------------------------- data → tensors
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


def make_batch(features: Sequence[np.ndarray], targets: Sequence[list[int]]) -> Batch:
    batch, lengths = pad_features(features)
    target_lengths = torch.tensor([len(t) for t in targets], dtype=torch.long)
    flat = torch.tensor([token for target in targets for token in target], dtype=torch.long)
    return batch, lengths, flat, target_lengths


def recordings_of(
    rows: np.ndarray, features: Sequence[np.ndarray], renderings: Sequence[list[np.ndarray]]
) -> list[np.ndarray]:
    """Per row, its clip or one of the clip's augmented renderings, uniformly (torch's generator, which
    checkpoints keep); the clips themselves when there are no renderings."""
    if not renderings:
        return [features[i] for i in rows]
    picks = torch.randint(0, len(renderings[0]) + 1, (len(rows),)).tolist()
    return [features[i] if pick == 0 else renderings[i][pick - 1] for i, pick in zip(rows, picks, strict=True)]


def ctc_loss_of(model: nn.Module, batch: Batch, blend: Blend | None = None) -> torch.Tensor:
    """Mean CTC loss per target character; the forward under the caller's autocast, the loss in fp32.

    With a `blend` (train.mixup) each row's spectrogram is mixed with its partner's over the longer of
    the two, and the loss is the blend of the CTC losses against both transcripts."""
    features, lengths, targets, target_lengths = batch
    if blend is None:
        logits, frames = model(features, lengths)
        return ctc_loss(logits, frames, targets, target_lengths)
    partner = blend.partner
    mixed = features * blend.own + features[partner] * (1.0 - blend.own)  # padding is 0: the normalized mean
    logits, frames = model(mixed, torch.maximum(lengths, lengths[partner.to(lengths.device)]))
    by_row = torch.split(targets, target_lengths.tolist())
    partner_targets = torch.cat([by_row[j] for j in partner.tolist()])
    own = ctc_loss(logits, frames, targets, target_lengths)
    return blend.own * own + (1.0 - blend.own) * ctc_loss(
        logits, frames, partner_targets, target_lengths[partner.cpu()]
    )


def ctc_loss(
    logits: torch.Tensor, frames: torch.Tensor, targets: torch.Tensor, target_lengths: torch.Tensor
) -> torch.Tensor:
    with torch.autocast(logits.device.type, enabled=False):
        log_probs = logits.float().log_softmax(-1).transpose(0, 1)  # T × B × vocab, as ctc_loss reads it
        return F.ctc_loss(log_probs, targets, frames, target_lengths, blank=BLANK, zero_infinity=True)


# ----------------------------------------------------------------------------- the loop
def fit_speech(
    model: nn.Module,
    train: tuple[list[np.ndarray], list[list[int]]],
    score_valid: Callable[[nn.Module], dict[str, float]],
    cfg: TrainConfig,
    *,
    augment: SpeechAugment = SpeechAugment(),
    seed: int,
    log_epoch: Callable[[dict[str, Any]], None],
    topology: Topology,
    resume: Checkpoint | None = None,
    hooks: Sequence[LoopHook] = (),
) -> TrainingState:
    """Train for cfg.epochs; returns the loop state (history, best epoch by valid_cer). Each row of a batch
    is its clip or one of `augment`'s renderings, then `augment`'s spectrogram transform (warp, masks).

    Each epoch's batches are drawn from `sampler`; its state at the epoch's start is kept too, so a run
    resumed mid-epoch redraws the same batches."""
    features, targets = train
    lengths = np.array([f.shape[1] for f in features])
    optimizer = build_optimizer(model, cfg)
    sampler, epoch_start = torch.Generator().manual_seed(seed), torch.Generator()
    batches_per_epoch = math.ceil(len(features) / cfg.batch_size)
    total = cfg.max_steps or batches_per_epoch * cfg.epochs
    average = WeightAverage.for_config(cfg, model, total)
    generators = {"sampler": sampler, "epoch_start": epoch_start}
    parts = TrainingParts(model, optimizer, generators=generators, average=average)
    state = resume.restore(parts, topology) if resume is not None else TrainingState()
    lr_factor = SCHEDULES.get(cfg.schedule)(cfg, total, batches_per_epoch)
    chooser = ThreadChooser.for_config(cfg, torch.device("cpu"))
    autocast = autocast_context(cfg.precision, torch.device("cpu"))  # bf16 when the probe found it pays

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
                batch = make_batch(recordings_of(rows, features, augment.renderings), [targets[i] for i in rows])
                if augment.spectrogram is not None:
                    batch = (augment.spectrogram(batch[0][:, None])[:, 0], *batch[1:])
                lr = cfg.lr * lr_factor(state.steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                blend = draw_blend(len(rows), cfg.mixup, batch[0].device) if cfg.mixup else None
                with autocast:
                    loss = ctc_loss_of(model, batch, blend)
                loss_value = loss.item()
                if not math.isfinite(loss_value):
                    raise TrainingError(
                        f"loss is {loss_value} at step {state.steps + 1}; lower train.lr or add train.grad_clip"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                state.sums["train_loss"] = state.sums.get("train_loss", 0.0) + loss_value
                state.seen += 1
                state.batch, state.steps = index + 1, state.steps + 1
                if average is not None:
                    average.update(model, state.steps)
                for hook in hooks:
                    hook.after_step(parts, state, StepInfo(loss_value, None, len(rows), lr))

        row: dict[str, Any] = {
            "epoch": epoch,
            "step": state.steps,
            "train_loss": state.sums.get("train_loss", 0.0) / max(state.seen, 1),
        }
        scores = score_valid(scored_model(model, average))
        row["valid_cer"], row["valid_wer"] = scores["cer"], scores["wer"]
        row["lr"] = optimizer.param_groups[0]["lr"]
        row["seconds"] = time.perf_counter() - started
        if chooser.measures:
            row["threads"] = chooser.chosen
        close_epoch(
            parts, state, row, hooks, log_epoch, row["valid_cer"], lower_is_better=True, keep_weights=cfg.keep_best
        )
        if cfg.max_steps and state.steps >= cfg.max_steps:
            break

    end_training(model, parts, state, hooks)
    return state


# ----------------------------------------------------------------------------- recipe
def train_speech(
    config: RunConfig,
    out: str | Path | None = None,
    *,
    show_progress: bool = False,
    resume: str | Path | None = None,
    force: bool = False,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> SpeechRun:
    """Train as the config says; returns the loaded SpeechRun (`resume`, `force`: as for every recipe;
    `on_epoch(row)` after each epoch's evaluation, e.g. `modelforge tune` reporting to its study)."""
    started = time.time()
    set_cpu_threads(config.train.threads)
    torch.manual_seed(config.seed)
    settings = settings_of(config)
    train, valid, test = split_clips(config.data, config.seed)
    run_dir, checkpoint = open_run_directory(config, out, resume, force)
    sample_rate = settings.sample_rate or most_common_rate(train)
    if checkpoint is not None and (run_dir / "tokens.json").is_file():  # the characters it trained with
        characters = load_characters(run_dir / "tokens.json")
    else:
        characters = fit_characters(train.texts or [], settings.lowercase, settings.lexicon)
    spec = SpeechSpec(settings.n_mels, characters.vocab_size)
    torch.manual_seed(config.seed)
    model = build_model(config.model.type, spec, spec.vocab, config.model.options())
    model_info = {
        "type": config.model.type,
        "options": config.model.options(),
        "vocab": spec.vocab,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    preprocessing = {
        "task": config.task,
        "audio": train.audio_name,
        "target": train.text_name,
        "sample_rate": sample_rate,
        "n_mels": settings.n_mels,
        "window_ms": settings.window_ms,
        "hop_ms": settings.hop_ms,
        "normalize": "utterance",
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    save_characters(characters, run_dir / "tokens.json")
    atomic_write_json(run_dir / "preprocessing.json", preprocessing)
    try:
        return _train_into(run_dir, config, (train, valid, test), characters, sample_rate, model, model_info,
                           show_progress, started, checkpoint, on_epoch)  # fmt: skip
    except BaseException:
        # a run that never finished keeps what it logged (and its checkpoints) but is marked incomplete
        (run_dir / "model.json").unlink(missing_ok=True)
        raise


def _train_into(
    run_dir: Path,
    config: RunConfig,
    splits: tuple[Any, Any, Any],
    characters: Characters,
    sample_rate: int,
    model: nn.Module,
    model_info: dict[str, Any],
    show_progress: bool,
    started: float,
    checkpoint: Checkpoint | None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> SpeechRun:
    from safetensors.torch import save

    from modelforge.training.recipe import start_environment
    from modelforge.training.tracking import open_trackers

    settings = settings_of(config)
    train, valid, test = splits
    train_features, train_renderings = training_features(train, settings, sample_rate, config.seed)
    train_targets = [characters.encode(t) for t in train.texts]
    valid_features = clips_features(valid, settings, sample_rate)
    valid_references = [characters.normalize(t) for t in valid.texts]
    topology = Topology(device=torch.device("cpu"))
    environment = start_environment(run_dir, config, topology, checkpoint)
    metrics_path = start_run_files(run_dir, config, environment, checkpoint.history if checkpoint else [])
    first_rows = range(min(config.train.batch_size, len(train_features)))
    first = make_batch([train_features[i] for i in first_rows], [train_targets[i] for i in first_rows])
    config = settle_auto(
        run_dir, config, model, topology, lambda: ctc_loss_of(model, first), batch_signature(first[:2]),
        environment, show_progress,
    )  # fmt: skip

    def log_epoch(row: dict[str, Any]) -> None:
        append_jsonl(metrics_path, row)
        if on_epoch is not None:
            on_epoch(row)
        if show_progress:
            print(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)

    # beam 1 (greedy; kept to the lexicon if any) on the features as they are: cheap, once an epoch
    def score_valid(scored: nn.Module) -> dict[str, float]:
        return speech_metrics(transcribe_features(scored, characters, valid_features, 1), valid_references)

    steps_per_epoch = math.ceil(len(train_features) / config.train.batch_size)
    with StopSignal() as stop:
        checkpointer = open_checkpointer(run_dir, topology, config.train, stop, checkpoint)
        purge_step = checkpoint.steps + 1 if checkpoint else None  # a resumed run's curves have no doubles
        trackers = open_trackers(run_dir, config.model_dump(mode="json"), steps_per_epoch, purge_step)
        hooks: list[Any] = [*trackers, checkpointer]  # logs first, so a stop raised by the checkpointer comes after
        try:
            outcome = fit_speech(
                model,
                (train_features, train_targets),
                score_valid,
                config.train,
                augment=SpeechAugment.of(settings, train_renderings),
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
    scored_features = valid_features if test is None else clips_features(test, settings, sample_rate)
    decode_started = time.perf_counter()
    hypotheses = transcribe_features(model, characters, scored_features, settings.beam, settings.warps)
    decode_seconds = time.perf_counter() - decode_started
    references = [characters.normalize(t) for t in scored.texts]
    evaluation: dict[str, Any] = {"split": split, **speech_metrics(hypotheses, references)}
    audio_seconds = sum(f.shape[1] for f in scored_features) * settings.hop_ms / 1000
    evaluation.update(
        beam=settings.beam,
        warps=settings.warps,
        best_epoch=outcome.best_epoch,
        best_valid_cer=outcome.best_value,
        epochs=len(outcome.history),
        steps=outcome.steps,
        train_clips=len(train),
        sample_rate=sample_rate,
        real_time_factor=decode_seconds / max(audio_seconds, 1e-9),
        train_seconds=round(time.time() - started, 3),
    )
    finish_run_directory(run_dir, evaluation, environment, model_info)
    return load_speech_run(run_dir)
