"""Optimizers, learning-rate schedules and losses, each chosen by name from a registry."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from modelforge.config import TrainConfig
from modelforge.registry import Registry
from modelforge.tasks import predicts_label_sets, predicts_values

OPTIMIZERS: Registry[Callable[[list[dict], TrainConfig], torch.optim.Optimizer]] = Registry("optimizer")
SCHEDULES: Registry[Callable[[TrainConfig, int, int], Callable[[int], float]]] = Registry("schedule")
LOSSES: Registry[Callable[..., nn.Module]] = Registry("loss")


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices and kernels only; biases, norms and embeddings are exempt."""
    decay, exempt = [], []
    # parameters(), not .weight: reading a parametrized weight runs its parametrization (a spectral
    # norm's power iteration, which moves its state) and is not the parameter the optimizer steps
    embedding_weights = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    for param in model.parameters():
        if not param.requires_grad:
            continue
        (decay if param.ndim >= 2 and id(param) not in embedding_weights else exempt).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if exempt:
        groups.append({"params": exempt, "weight_decay": 0.0})
    return groups


@OPTIMIZERS.register("sgd")
def _sgd(groups: list[dict], cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)


def fusable(groups: list[dict], cfg: TrainConfig) -> bool:
    """Whether Adam(W) can update every tensor in one fused kernel: floating parameters on the CPU or a
    GPU, not FSDP's sharded ones. The GPT reference step ran 12 % faster than with the foreach kernels."""
    params = [p for group in groups for p in group["params"]]
    devices = {p.device.type for p in params}
    return cfg.strategy != "fsdp" and devices <= {"cpu", "cuda"} and all(p.is_floating_point() for p in params)


@OPTIMIZERS.register("adam")
def _adam(groups: list[dict], cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.betas, fused=fusable(groups, cfg) or None)


@OPTIMIZERS.register("adamw")
def _adamw(groups: list[dict], cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, fused=fusable(groups, cfg) or None)


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    return OPTIMIZERS.get(cfg.optimizer)(parameter_groups(model, cfg.weight_decay), cfg)


def _with_warmup(cfg: TrainConfig, after: Callable[[int], float]) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / (cfg.warmup_steps + 1)
        return after(step)

    return factor


@SCHEDULES.register("constant")
def _constant(cfg: TrainConfig, total: int, per_epoch: int) -> Callable[[int], float]:
    return _with_warmup(cfg, lambda step: 1.0)


@SCHEDULES.register("step")
def _step(cfg: TrainConfig, total: int, per_epoch: int) -> Callable[[int], float]:
    return _with_warmup(cfg, lambda step: cfg.gamma ** (step // max(per_epoch * cfg.step_size, 1)))


@SCHEDULES.register("cosine")
def _cosine(cfg: TrainConfig, total: int, per_epoch: int) -> Callable[[int], float]:
    floor = cfg.min_lr / cfg.lr

    def after(step: int) -> float:
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return _with_warmup(cfg, after)


@SCHEDULES.register("onecycle")
def _onecycle(cfg: TrainConfig, total: int, per_epoch: int) -> Callable[[int], float]:
    peak = max(1, int(0.3 * total))

    def factor(step: int) -> float:
        if step < peak:
            return 0.04 + 0.96 * step / peak
        progress = min(1.0, (step - peak) / max(1, total - peak))
        return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def build_schedule(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR | None:
    """The per-step LR schedule; None for a constant rate (a scheduler step costs ~20 µs of Python)."""
    if cfg.schedule == "constant" and not cfg.warmup_steps:
        return None
    factor = SCHEDULES.get(cfg.schedule)(cfg, total_steps, steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class BinaryCrossEntropy(nn.Module):
    """BCE-with-logits on a single logit per row; `weight` is per class [negative, positive]."""

    def __init__(self, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        pos_weight = None if weight is None else (weight[1] / weight[0]).reshape(1)
        self.loss = nn.BCEWithLogitsLoss(pos_weight=pos_weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss(logits.squeeze(-1), target.to(logits.dtype))


class FocalLoss(nn.Module):
    """Focal loss (Lin et al., 2017): cross-entropy scaled by (1 - p_true)^gamma, so rows the model already
    gets right count less and the rare class's hard rows more. One logit per class; `weight` per class
    (a weighted mean, as CrossEntropyLoss takes it)."""

    def __init__(self, weight: torch.Tensor | None = None, gamma: float = 2.0) -> None:
        super().__init__()
        self.gamma = gamma
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_true = torch.log_softmax(logits.float(), dim=-1).gather(1, target.long().unsqueeze(1)).squeeze(1)
        loss = -((1 - log_true.exp()) ** self.gamma) * log_true
        if self.weight is None:
            return loss.mean()
        row_weight = self.weight[target.long()]
        return (loss * row_weight).sum() / row_weight.sum()


class RegressionLoss(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.loss = nn.MSELoss() if kind == "mse" else nn.HuberLoss()

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss(prediction.squeeze(-1), target.to(prediction.dtype))


LOSSES.add(
    "cross_entropy",
    lambda weight=None, label_smoothing=0.0: nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing),
)
LOSSES.add("bce", lambda weight=None, label_smoothing=0.0: BinaryCrossEntropy(weight))
LOSSES.add("focal", lambda weight=None, label_smoothing=0.0: FocalLoss(weight))
LOSSES.add("mse", lambda weight=None, label_smoothing=0.0: RegressionLoss("mse"))
LOSSES.add("huber", lambda weight=None, label_smoothing=0.0: RegressionLoss("huber"))


def default_loss(task: str, n_classes: int) -> str:
    if predicts_values(task):
        return "mse"
    if predicts_label_sets(task):
        return "bce"  # one sigmoid per label
    return "bce" if n_classes == 2 else "cross_entropy"


def output_size(task: str, n_classes: int, loss: str) -> int:
    if predicts_values(task):
        return 1
    if predicts_label_sets(task):
        return n_classes
    return 1 if loss == "bce" else n_classes
