"""The generation recipe: images (+ optional labels) → split → generator → loop → run directory.

Readable top to bottom: read the image column (and `data.target` when the model is
conditioned on it), scale pixels to [0, 1], split, build the registered model, run the loop
(VAE: minimise the negative ELBO, keep the best validation epoch; GAN: per batch a hinge-loss
discriminator step, then a generator step), then write the run directory. With
`generation.classifier` set, the finished generator's samples are scored by that classifier
run and the figures land in eval.json beside the test loss.

Checkpoints, `--resume` and SIGTERM / SIGINT work as for supervised runs (training/checkpoint.py,
training/resume.py, training/interrupt.py): a run killed at any moment and resumed ends with the
weights, bitwise, of the run that was never stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelforge.config import GenerationConfig, RunConfig, TrainConfig
from modelforge.files import append_jsonl, atomic_write_bytes, atomic_write_json
from modelforge.generation.data import ImageSet, image_column, read_images, split_rows, tensors
from modelforge.generation.run import GeneratorRun, load_generator_run, negative_elbo
from modelforge.inference import set_cpu_threads
from modelforge.models import build_model
from modelforge.models.generative import ConditionalGAN, ConditionalVAE, ImageGenerationSpec
from modelforge.run import finish_run_directory, start_run_files
from modelforge.training.checkpoint import (
    Checkpoint,
    TrainingParts,
    TrainingState,
    open_checkpointer,
    storable_tensors,
)
from modelforge.training.distributed import Topology
from modelforge.training.interrupt import StopSignal
from modelforge.training.loop import LoopHook, StepInfo, close_epoch, end_training
from modelforge.training.optim import build_optimizer
from modelforge.training.probe import batch_signature, settle_auto
from modelforge.training.resume import open_run_directory
from modelforge.training.threads import ThreadChooser

Optimizers = Sequence[torch.optim.Optimizer]


# ----------------------------------------------------------------------------- one batch
def vae_step(
    model: ConditionalVAE,
    images: torch.Tensor,
    labels: torch.Tensor | None,
    optimizers: Optimizers,
    sampler: torch.Generator,
) -> dict[str, float]:
    """One step on the negative ELBO (its z is drawn from torch's global RNG, not `sampler`)."""
    (optimizer,) = optimizers
    loss, parts = model.loss(images, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {"train_loss": loss.item(), "train_reconstruction": parts["reconstruction"], "train_kl": parts["kl"]}


def gan_step(
    model: ConditionalGAN,
    images: torch.Tensor,
    labels: torch.Tensor | None,
    optimizers: Optimizers,
    sampler: torch.Generator,
) -> dict[str, float]:
    """A discriminator hinge step on real vs generated images, then a generator step (z from `sampler`)."""
    d_optimizer, g_optimizer = optimizers
    z = torch.randn(len(images), model.latent, generator=sampler)
    fake = model.generator(z, labels)
    real_score = model.discriminator(images, labels)
    fake_score = model.discriminator(fake.detach(), labels)
    d_loss = torch.relu(1 - real_score).mean() + torch.relu(1 + fake_score).mean()
    d_optimizer.zero_grad(set_to_none=True)
    d_loss.backward()
    d_optimizer.step()
    g_loss = -model.discriminator(fake, labels).mean()
    g_optimizer.zero_grad(set_to_none=True)
    g_loss.backward()
    g_optimizer.step()
    return {"train_d_loss": d_loss.item(), "train_g_loss": g_loss.item(), "train_d_real": real_score.mean().item()}


def probe_loss(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """A batch's training loss for `train.threads: auto`'s probe: the negative ELBO, or both GAN losses."""
    if isinstance(model, ConditionalVAE):
        return model.loss(images, labels)[0]
    fake = model.generator(torch.randn(len(images), model.latent), labels)
    real_score, fake_score = model.discriminator(images, labels), model.discriminator(fake, labels)
    return torch.relu(1 - real_score).mean() + torch.relu(1 + fake_score).mean() - fake_score.mean()


def build_optimizers(model: torch.nn.Module, cfg: TrainConfig) -> list[torch.optim.Optimizer]:
    """train.optimizer over the VAE; for the GAN one per network, discriminator first (each steps only its own)."""
    if isinstance(model, ConditionalGAN):
        return [build_optimizer(model.discriminator, cfg), build_optimizer(model.generator, cfg)]
    return [build_optimizer(model, cfg)]


# ----------------------------------------------------------------------------- the loop
def fit_generator(
    model: torch.nn.Module,
    data: ImageSet,
    rows: dict[str, np.ndarray],
    cfg: TrainConfig,
    *,
    seed: int,
    log_epoch: Callable[[dict[str, Any]], None],
    topology: Topology,
    resume: Checkpoint | None = None,
    hooks: Sequence[LoopHook] = (),
) -> TrainingState:
    """Train for cfg.epochs over rows["train"]; returns the loop state (history, best epoch).

    Each epoch's order is drawn from `sampler`, which the GAN's latents also come from; its state at
    the epoch's start is kept too, so a run resumed mid-epoch redraws the same order.
    """
    step: Callable[..., dict[str, float]] = vae_step if isinstance(model, ConditionalVAE) else gan_step
    optimizers = build_optimizers(model, cfg)
    sampler, epoch_start = torch.Generator().manual_seed(seed), torch.Generator()
    generators = {"sampler": sampler, "epoch_start": epoch_start}
    parts = TrainingParts(model, optimizers[0], generators=generators, extra_optimizers=optimizers[1:])
    state = resume.restore(parts, topology) if resume is not None else TrainingState()
    train_rows, size = rows["train"], cfg.batch_size
    batches_per_epoch = math.ceil(len(train_rows) / size)
    chooser = ThreadChooser.for_config(cfg, torch.device("cpu"))

    for epoch in range(state.epoch, cfg.epochs + 1):
        started = time.perf_counter()
        model.train()
        if state.batch == 0:
            epoch_start.set_state(sampler.get_state())
            order = train_rows[torch.randperm(len(train_rows), generator=sampler).numpy()]
        else:  # resumed mid-epoch: the order drawn at the epoch's start (the sampler has moved past it)
            replay = torch.Generator().set_state(epoch_start.get_state())
            order = train_rows[torch.randperm(len(train_rows), generator=replay).numpy()]
        for index in range(state.batch, batches_per_epoch):
            with chooser.timed(state.steps):
                images, labels = tensors(data, order[index * size : (index + 1) * size])
                losses = step(model, images, labels, optimizers, sampler)
                state.sums = {
                    name: state.sums.get(name, 0.0) + value / batches_per_epoch for name, value in losses.items()
                }
                state.batch, state.steps = index + 1, state.steps + 1
                info = StepInfo(next(iter(losses.values())), None, len(images), optimizers[0].param_groups[0]["lr"])
                for hook in hooks:
                    hook.after_step(parts, state, info)

        row: dict[str, Any] = {"epoch": epoch, "step": state.steps, **state.sums}
        if isinstance(model, ConditionalVAE) and len(rows["valid"]):
            row.update({f"valid_{k}": v for k, v in negative_elbo(model, *tensors(data, rows["valid"])).items()})
        row["seconds"] = time.perf_counter() - started
        if chooser.measures:
            row["threads"] = chooser.chosen
        close_epoch(
            parts, state, row, hooks, log_epoch, row.get("valid_loss"), lower_is_better=True, keep_weights=cfg.keep_best
        )

    end_training(model, parts, state, hooks)
    return state


# ----------------------------------------------------------------------------- recipe
def train_generator(
    config: RunConfig,
    out: str | Path | None = None,
    *,
    show_progress: bool = False,
    resume: str | Path | None = None,
    force: bool = False,
) -> GeneratorRun:
    """Train as the config says; returns the loaded GeneratorRun.

    `resume` continues a run (a directory, or "auto") from its newest good checkpoint; `force` lets
    harmless config changes (more epochs) through (see training/resume.py)."""
    started = time.time()
    set_cpu_threads(config.train.threads)
    torch.manual_seed(config.seed)
    data = read_images(config)
    rows = split_rows(len(data.images), config)
    _, channels, height, width = data.images.shape
    spec = ImageGenerationSpec(channels, height, width, len(data.classes))
    model = build_model(config.model.type, spec, 0, config.model.options())
    model_info = {
        "type": config.model.type,
        "options": config.model.options(),
        "output_dim": 0,
        "input_spec": asdict(spec),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    preprocessing = {
        "task": "generation",
        "image_column": image_column(config),
        "classes": data.classes,
        "layout": data.layout,
        "scale": data.scale,
    }
    settings = config.generation or GenerationConfig()
    if settings.classifier:  # the scorer is checked now, not after the last epoch
        from modelforge.generation.score import load_classifier

        load_classifier(settings.classifier)
    run_dir, checkpoint = open_run_directory(config, out, resume, force)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _train_into(
            run_dir, config, data, rows, model, model_info, preprocessing, show_progress, started, checkpoint
        )
    except BaseException:
        # a run that never finished keeps what it logged (and its checkpoints) but is marked incomplete
        (run_dir / "model.json").unlink(missing_ok=True)
        raise


def _train_into(
    run_dir: Path,
    config: RunConfig,
    data: ImageSet,
    rows: dict[str, np.ndarray],
    model: torch.nn.Module,
    model_info: dict[str, Any],
    preprocessing: dict[str, Any],
    show_progress: bool,
    started: float,
    checkpoint: Checkpoint | None,
) -> GeneratorRun:
    from safetensors.torch import save

    from modelforge.training.recipe import start_environment
    from modelforge.training.tracking import open_trackers

    topology = Topology(device=torch.device("cpu"))
    environment = start_environment(run_dir, config, topology, checkpoint)
    metrics_path = start_run_files(run_dir, config, environment, checkpoint.history if checkpoint else [])
    atomic_write_json(run_dir / "preprocessing.json", preprocessing)
    images, labels = tensors(data, rows["train"][: config.train.batch_size])
    config = settle_auto(
        run_dir,
        config,
        model,
        topology,
        lambda: probe_loss(model, images, labels),
        batch_signature(images),
        environment,
        show_progress,
        tunes_precision=False,
    )

    def log_epoch(row: dict[str, Any]) -> None:
        append_jsonl(metrics_path, row)
        if show_progress:
            print(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)

    steps_per_epoch = math.ceil(len(rows["train"]) / config.train.batch_size)
    with StopSignal() as stop:
        checkpointer = open_checkpointer(run_dir, topology, config.train, stop, checkpoint)
        purge_step = checkpoint.steps + 1 if checkpoint else None  # a resumed run's curves have no doubles
        trackers = open_trackers(run_dir, config.model_dump(mode="json"), steps_per_epoch, purge_step)
        hooks: list[Any] = [*trackers, checkpointer]  # logs first, so a stop raised by the checkpointer comes after
        try:
            outcome = fit_generator(
                model,
                data,
                rows,
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

    evaluation: dict[str, Any] = {"split": "test", "n": len(rows["test"])}
    if isinstance(model, ConditionalVAE) and len(rows["test"]):
        evaluation.update({f"test_{k}": v for k, v in negative_elbo(model, *tensors(data, rows["test"])).items()})
    evaluation.update(
        best_epoch=outcome.best_epoch or config.train.epochs, epochs=len(outcome.history), steps=outcome.steps
    )
    settings = config.generation or GenerationConfig()
    if settings.classifier:
        from modelforge.generation.score import score_generator

        run = GeneratorRun(run_dir, config, model, model_info, preprocessing)
        real = data.images[rows["test"]] if len(rows["test"]) else data.images[rows["train"]]
        evaluation.update(score_generator(run, settings.classifier, settings.samples, settings.temperature, real))
    evaluation["train_seconds"] = round(time.time() - started, 3)
    finish_run_directory(run_dir, evaluation, environment, model_info)
    return load_generator_run(run_dir)
