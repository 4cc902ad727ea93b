"""Samplers and pruners by name: `tune.sampler: tpe` / `--sampler grid`, `tune.pruner: median`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modelforge.registry import Registry
from modelforge.tune.space import Param

SamplerBuilder = Callable[[list[Param], int, int], Any]
PrunerBuilder = Callable[[int, int], Any]

SAMPLERS: Registry[SamplerBuilder] = Registry("sampler")
PRUNERS: Registry[PrunerBuilder] = Registry("pruner")


def startup_trials(total: int) -> int:
    """Random trials before a model-based sampler takes over: a quarter of the budget, 3 to 10."""
    return max(3, min(10, total // 4))


@SAMPLERS.register("tpe")
def tpe_sampler(params: list[Param], seed: int, total: int) -> Any:
    import optuna

    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials(total))


@SAMPLERS.register("random")
def random_sampler(params: list[Param], seed: int, total: int) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


@SAMPLERS.register("grid")
def grid_sampler(params: list[Param], seed: int, total: int) -> Any:
    import optuna

    class Grid(optuna.samplers.GridSampler):
        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            # Optuna stops the study here once the grid is covered, which only works inside
            # study.optimize(); our workers stop by themselves (--trials is capped at the grid size)
            return None

    # trial k visits grid point k of one fixed order, so every worker must shuffle it alike
    return Grid({p.path: p.grid_values() for p in params}, seed=0)


@SAMPLERS.register("cmaes")
def cmaes_sampler(params: list[Param], seed: int, total: int) -> Any:
    import optuna

    # CMA-ES handles floats and ints; choices are drawn at random beside it
    return optuna.samplers.CmaEsSampler(
        seed=seed, n_startup_trials=startup_trials(total), warn_independent_sampling=False
    )


def grid_size(params: list[Param]) -> int:
    size = 1
    for param in params:
        size *= len(param.grid_values())
    return size


@PRUNERS.register("none")
def no_pruner(warmup_epochs: int, epochs: int) -> Any:
    import optuna

    return optuna.pruners.NopPruner()


@PRUNERS.register("median")
def median_pruner(warmup_epochs: int, epochs: int) -> Any:
    import optuna

    # prune a trial whose epoch metric is worse than the median of earlier trials at that epoch
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup_epochs)


@PRUNERS.register("hyperband")
def hyperband_pruner(warmup_epochs: int, epochs: int) -> Any:
    import optuna

    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1), reduction_factor=3)
