"""Pruning: unstructured magnitude pruning made permanent, and structured pruning that shrinks layers.

Magnitude pruning zeroes the smallest weights (globally or per layer) through torch's pruning
masks, so a fine-tune keeps them at zero; `make_permanent` then folds the masks into plain
dense weights. Structured pruning removes whole neurons (mlp) or channels (cnn) by L1 norm,
slices every tensor that touches them, and rebuilds the model with the smaller sizes in its
options (`hidden`, `channels`), so `load_run` builds the small model and it really runs faster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

from modelforge.errors import ModelforgeError
from modelforge.registry import Registry

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)


# ----------------------------------------------------------------------------- unstructured
def prunable_weights(model: nn.Module) -> list[tuple[nn.Module, str]]:
    return [(module, "weight") for module in model.modules() if isinstance(module, PRUNABLE)]


def magnitude_prune(model: nn.Module, amount: float, scope: str = "global") -> None:
    """Mask the `amount` share of smallest-magnitude Linear/Conv weights (global or per layer)."""
    targets = prunable_weights(model)
    if not targets:
        raise ModelforgeError(f"--prune: the model has no Linear or Conv layers to prune ({type(model).__name__})")
    if scope == "global":
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=amount)
    else:
        for module, name in targets:
            prune.l1_unstructured(module, name, amount=amount)


def make_permanent(model: nn.Module) -> None:
    """Fold pruning masks into the weights: plain dense tensors with zeros, loadable anywhere."""
    for module in model.modules():
        if prune.is_pruned(module) and hasattr(module, "weight_orig"):
            prune.remove(module, "weight")


def nonzero_share(model: nn.Module) -> float:
    weights = [p for p in model.parameters() if p.ndim >= 2]
    total = sum(p.numel() for p in weights)
    return sum(int((p != 0).sum()) for p in weights) / max(total, 1)


# ----------------------------------------------------------------------------- structured
@dataclass(frozen=True)
class StructuredTarget:
    """Where a family keeps its prunable stack, and which option records the kept widths."""

    encoder: str  # key in FusionModel.encoders
    option: str  # model option rewritten with the new widths
    widths_from_layers: Callable[[list[int], dict[str, Any]], list[int]]


STRUCTURED: Registry[StructuredTarget] = Registry("structured pruning target")
STRUCTURED.add("mlp", StructuredTarget("tabular", "hidden", lambda widths, options: widths))
STRUCTURED.add(
    "cnn",
    StructuredTarget("image", "channels", lambda widths, options: widths[:: int(options.get("convs_per_block", 2))]),
)


def structured_prune(
    model: nn.Module, model_type: str, options: dict[str, Any], amount: float
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Remove the `amount` share of neurons/channels of every hidden layer.

    Returns the sliced state dict and the model options with the new widths; build the model
    from those options and load the state dict (strictly) to get the smaller network.
    """
    if model_type not in STRUCTURED:
        supported = ", ".join(STRUCTURED.names())
        raise ModelforgeError(f"--prune-method structured: supports model types {supported}; this run is {model_type}")
    target = STRUCTURED.get(model_type)
    encoders = model.encoders  # type: ignore[attr-defined]
    body: nn.Sequential = encoders[target.encoder].body
    prefix = f"encoders.{target.encoder}.body"
    slices: dict[str, list[tuple[int, torch.Tensor]]] = {}
    kept: torch.Tensor | None = None
    widths: list[int] = []
    for index, module in enumerate(body):
        name = f"{prefix}.{index}"
        if isinstance(module, PRUNABLE):
            weight = module.weight.detach()
            n_keep = max(1, round(weight.shape[0] * (1 - amount)))
            importance = weight.abs().flatten(1).sum(1)
            new_kept = importance.topk(n_keep).indices.sort().values
            slices[f"{name}.weight"] = [(0, new_kept)] + ([(1, kept)] if kept is not None else [])
            if module.bias is not None:
                slices[f"{name}.bias"] = [(0, new_kept)]
            kept = new_kept
            widths.append(n_keep)
        elif isinstance(module, NORMS) and kept is not None:
            for key in ("weight", "bias", "running_mean", "running_var"):
                if getattr(module, key, None) is not None:
                    slices[f"{name}.{key}"] = [(0, kept)]
    if kept is None:
        raise ModelforgeError(f"--prune-method structured: the {model_type} run has no hidden layers to prune")
    slices["head.weight"] = [(1, head_columns(encoders, target.encoder, kept))]
    state = {key: slice_tensor(value, slices.get(key, [])) for key, value in model.state_dict().items()}
    new_options = {**options, target.option: target.widths_from_layers(widths, options)}
    return state, new_options


def head_columns(encoders: nn.ModuleDict, pruned: str, kept: torch.Tensor) -> torch.Tensor:
    """Input columns of the fusion head to keep: the pruned encoder's survivors, all others."""
    columns, offset = [], 0
    for name, encoder in encoders.items():
        width = int(encoder.out_dim)  # type: ignore[arg-type]
        columns.append(offset + kept if name == pruned else torch.arange(offset, offset + width))
        offset += width
    return torch.cat(columns)


def slice_tensor(value: torch.Tensor, cuts: list[tuple[int, torch.Tensor]]) -> torch.Tensor:
    for dim, index in cuts:
        value = value.index_select(dim, index)
    return value.contiguous()


# ----------------------------------------------------------------------------- fine-tune
def finetune(
    model: nn.Module,
    run: Any,
    splits: Any,
    epochs: int,
    lr: float | None,
    log_epoch: Callable[[dict[str, Any]], None],
) -> None:
    """A short training of the pruned model on the run's own train split (masks stay applied).

    Cosine schedule from `lr` (default: a tenth of the run's learning rate), no early stopping.
    """
    from modelforge.training.loop import fit
    from modelforge.training.optim import LOSSES, default_loss
    from modelforge.training.recipe import batch_augmenter, make_scorer

    config = run.config
    loss_name = config.train.loss or default_loss(config.task, len(run.preprocessor.classes))
    loss_fn = LOSSES.get(loss_name)(label_smoothing=config.train.label_smoothing)
    train_cfg = config.train.model_copy(
        update={
            "epochs": epochs,
            "lr": lr or config.train.lr / 10,
            "schedule": "cosine",
            "warmup_steps": 0,
            "max_steps": None,
            "early_stopping": None,
            "checkpoint_every": None,
        }
    )
    scorer = make_scorer(config.task, loss_fn, run.preprocessor, config.train.precision, 1024)
    fit(
        model,
        splits.train,
        splits.valid,
        train_cfg,
        loss_fn,
        scorer,
        seed=config.seed,
        log_epoch=log_epoch,
        show_progress=False,
        augment=batch_augmenter(run.preprocessor),
    )
    model.to("cpu")
