"""Running a study: validate the space, open the storage, run trials in K worker processes.

    STUDY_DIR/
      study.json       what was searched: config, overrides, metric, storage, sampler, trials
      study.db         the SQLite storage (unless --storage names another database)
      trials/0003/     every trial is a normal run directory
      trials.csv       one row per trial: number, state, metric, parameters
      best.yaml        the best trial's full config, ready for `modelforge train`
      plots/           optimization history, parameter importance, parallel coordinates (HTML)

`--trials N` is the study's total: re-running the command finishes what is missing. A trial
whose worker was killed is marked failed and its parameters run again.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from contextlib import AbstractContextManager, nullcontext, redirect_stderr
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from modelforge.config import config_to_yaml, load_config, read_yaml
from modelforge.errors import ConfigError, ModelforgeError
from modelforge.files import atomic_write_json
from modelforge.tune.space import Param, parse_space

STUDY_JSON = "study.json"


@dataclass
class StudyPlan:
    """Everything a worker needs to run trials; saved as study.json."""

    name: str
    out: str
    storage: str
    config: str
    overrides: list[str] = field(default_factory=list)
    metric: str = "valid_loss"
    direction: str = "minimize"
    trials: int = 20
    sampler: str = "tpe"
    pruner: str = "median"
    warmup_epochs: int = 2
    epochs: int = 1
    seed: int = 0
    jobs: int = 1


def plan_study(
    config: Path,
    overrides: list[str],
    *,
    out: Path | None = None,
    study: str | None = None,
    storage: str | None = None,
    trials: int | None = None,
    sampler: str | None = None,
    pruner: str | None = None,
    jobs: int = 1,
) -> tuple[StudyPlan, list[Param]]:
    """Check the config, its search space and the options; nothing is run or written."""
    from modelforge.tune.samplers import PRUNERS, SAMPLERS, grid_size
    from modelforge.tune.storage import default_storage_url

    if jobs < 1:
        raise ModelforgeError(f"--jobs: must be >= 1, got {jobs}")
    if trials is not None and trials < 1:
        raise ModelforgeError(f"--trials: must be >= 1, got {trials}")
    raw = read_yaml(config)
    base, params = parse_space(raw, overrides)
    tune = base.tune
    assert tune is not None  # parse_space checked it
    sampler = sampler or tune.sampler
    pruner = pruner or tune.pruner
    SAMPLERS.get(sampler)
    PRUNERS.get(pruner)
    total = trials or tune.trials
    if sampler == "grid":
        total = min(total, grid_size(params))  # the grid has no more points to visit
    name = study or base.name or config.stem
    study_dir = (out or Path("studies") / name).resolve()
    lower_is_better = tune.metric.endswith(("loss", "rmse", "mae", "mse", "cer", "wer"))  # error rates too
    direction = tune.direction or ("minimize" if lower_is_better else "maximize")
    plan = StudyPlan(
        name=name,
        out=str(study_dir),
        storage=storage or default_storage_url(study_dir),
        config=str(config.resolve()),
        overrides=list(overrides),
        metric=tune.metric,
        direction=direction,
        trials=total,
        sampler=sampler,
        pruner=pruner,
        warmup_epochs=tune.warmup_epochs,
        epochs=base.train.epochs,
        seed=base.seed if tune.seed is None else tune.seed,
        jobs=jobs,
    )
    return plan, params


def run_study(plan: StudyPlan) -> Any:
    """Create or resume the study, run the missing trials in `plan.jobs` workers; returns the study."""
    import optuna

    from modelforge.tune.storage import masked_url, open_storage
    from modelforge.tune.summary import write_reports

    quiet_optuna()
    study_dir = Path(plan.out)
    _check_study_dir(study_dir, plan.name)
    study_dir.mkdir(parents=True, exist_ok=True)
    storage = open_storage(plan.storage)
    study = optuna.create_study(study_name=plan.name, storage=storage, direction=plan.direction, load_if_exists=True)
    if study.direction.name.lower() != plan.direction:
        raise ConfigError(
            f"tune.direction: study {plan.name!r} was created to {study.direction.name.lower()}, "
            f"not {plan.direction}; use another --study"
        )
    atomic_write_json(study_dir / STUDY_JSON, {**asdict(plan), "storage": masked_url(plan.storage)})
    if plan.jobs == 1:
        run_worker(plan, 0, None)
    else:
        _run_worker_processes(plan)
    study = optuna.load_study(study_name=plan.name, storage=storage)
    write_reports(study, plan, plots=True)
    return study


def _check_study_dir(study_dir: Path, name: str) -> None:
    record = study_dir / STUDY_JSON
    if record.is_file():
        previous = json.loads(record.read_text()).get("name")
        if previous != name:
            raise ModelforgeError(
                f"{study_dir}: holds study {previous!r}, not {name!r}; choose another output directory"
            )
    elif study_dir.is_dir() and any(study_dir.iterdir()):
        raise ModelforgeError(f"{study_dir}: exists and is not a study directory; choose another output directory")


def _run_worker_processes(plan: StudyPlan) -> None:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    lock = context.Lock()  # local workers ask for trials one at a time, so the total is exact
    workers = [
        context.Process(target=run_worker, args=(plan, index, lock), name=f"tune-worker-{index}")
        for index in range(plan.jobs)
    ]
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            worker.join()
    except KeyboardInterrupt:
        for worker in workers:
            worker.join(timeout=30)
        raise
    failed = [w.name for w in workers if w.exitcode not in (0, None)]
    if failed:
        raise ModelforgeError(f"tune: worker(s) {', '.join(failed)} stopped with an error (see above)")


# ----------------------------------------------------------------------------- one worker
def run_worker(plan: StudyPlan, index: int, lock: Any) -> None:
    """Ask for trials and run them until the study has `plan.trials` finished or running."""
    import optuna
    import torch

    from modelforge.tune.samplers import PRUNERS, SAMPLERS
    from modelforge.tune.storage import count_trials, fail_dead_trials, open_storage, worker_identity
    from modelforge.tune.summary import write_reports

    quiet_optuna()
    _stop_on_sigterm()
    if lock is not None:
        _exit_with_parent()
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // plan.jobs))
    _, params = parse_space(read_yaml(plan.config), plan.overrides)
    storage = open_storage(plan.storage)
    study = optuna.load_study(
        study_name=plan.name, storage=storage, pruner=PRUNERS.get(plan.pruner)(plan.warmup_epochs, plan.epochs)
    )
    claim: AbstractContextManager[Any] = lock if lock is not None else nullcontext()
    while True:
        with claim:
            fail_dead_trials(study)
            counts = count_trials(study)
            if counts.done + counts.running >= plan.trials:
                break
            # a fresh sampler per trial, seeded by (seed, worker, trials so far): a resumed or
            # parallel study never replays the random points it already tried
            so_far = len(study.get_trials(deepcopy=False))
            seed = (plan.seed * 1_000_003 + index * 10_007 + so_far) % 2**31
            study.sampler = SAMPLERS.get(plan.sampler)(params, seed, plan.trials)
            trial = study.ask({p.path: p.distribution() for p in params})
            trial.set_user_attr("worker", worker_identity())
        run_trial(study, trial, plan, params)
        write_reports(study, plan, plots=False)


def run_trial(study: Any, trial: Any, plan: StudyPlan, params: list[Param]) -> None:
    """Train one run directory with the trial's parameters and tell the study how it went."""
    import optuna
    from optuna.trial import TrialState

    from modelforge.tasks import TASKS
    from modelforge.training.loop import TrainingError
    from modelforge.tune.storage import heartbeat, queue_retry

    values = {p.path: p.decode(trial.params[p.path]) for p in params}
    overrides = [*plan.overrides, *(f"{path}={json.dumps(value)}" for path, value in values.items())]
    started = time.perf_counter()
    try:
        config = load_config(plan.config, overrides)
        config = config.model_copy(update={"tune": None})
        run_dir = Path(plan.out) / "trials" / f"{trial.number:04d}"
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("config", config_to_yaml(config))
        rows: list[dict[str, Any]] = []

        def report_epoch(row: dict[str, Any]) -> None:
            if plan.metric not in row:
                raise ConfigError(f"tune.metric: {plan.metric!r} is not in the epoch metrics ({', '.join(row)})")
            rows.append(row)
            trial.report(float(row[plan.metric]), row["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {row['epoch']}")

        # the epoch lines training prints go to trials/NNNN.log, not between the trial lines
        with heartbeat(study._storage, trial), open(f"{run_dir}.log", "a") as log, redirect_stderr(log):
            # the task's recipe (every task that supports tune calls `on_epoch` with each epoch's row)
            run = TASKS.get(config.task).train(config, run_dir, show_progress=False, on_epoch=report_epoch)
        value = kept_epoch_value(rows, run.metrics.get("best_epoch"), plan.metric, config.train.keep_best)
        study.tell(trial, value)
        state, shown = "complete", f"{plan.metric} {value:.4f}"
    except optuna.TrialPruned as exc:
        study.tell(trial, state=TrialState.PRUNED)
        state, shown = "pruned", str(exc)
    except TrainingError as exc:
        # the hyperparameters broke training (e.g. a non-finite loss): a finished, failed trial
        trial.set_user_attr("error", str(exc))
        study.tell(trial, state=TrialState.FAIL)
        state, shown = "fail", str(exc)
    except BaseException:
        # interrupted or a problem outside the hyperparameters: run these parameters again later
        study.tell(trial, state=TrialState.FAIL)
        queue_retry(study, trial)
        raise
    seconds = time.perf_counter() - started
    shown_params = "  ".join(f"{k}={json.dumps(v)}" for k, v in values.items())
    print(f"trial {trial.number:>3} {state:<8} {shown}  ({seconds:.1f} s)  {shown_params}", flush=True)


def kept_epoch_value(rows: list[dict[str, Any]], best_epoch: Any, metric: str, keep_best: bool) -> float:
    """The metric of the epoch whose weights the run kept (the best epoch, else the last)."""
    if not rows:
        raise ModelforgeError("tune: the run logged no epochs")
    if keep_best and best_epoch is not None:
        for row in rows:
            if row["epoch"] == best_epoch:
                return float(row[metric])
    return float(rows[-1][metric])


def quiet_optuna() -> None:
    """Our own line per trial replaces Optuna's log; heartbeats with ask/tell are intended here."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


def _stop_on_sigterm() -> None:
    """SIGTERM becomes KeyboardInterrupt, so the running trial is marked failed and queued again."""
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _exit_with_parent() -> None:
    """A worker whose `modelforge tune` died interrupts itself (its trial is queued again)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
