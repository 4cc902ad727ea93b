"""Where a study lives: an SQLAlchemy URL (SQLite in the study directory by default).

Trials that a dead worker left RUNNING are found two ways: on this host, by the worker's
process id being gone (at once); on other hosts, by a heartbeat that stopped (after a grace
period). Either way the trial is marked failed and its parameters are queued again.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelforge.errors import ModelforgeError

HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 60
STUDY_DB = "study.db"


def default_storage_url(study_dir: Path) -> str:
    return f"sqlite:///{(study_dir / STUDY_DB).resolve()}"


def masked_url(url: str) -> str:
    """The URL without its password, safe to write into study.json."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def open_storage(url: str) -> Any:
    """An Optuna RDB storage with heartbeats; errors name the URL and the likely fix."""
    import optuna
    from sqlalchemy.exc import ArgumentError, OperationalError

    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        # several worker processes write the same file: wait for the lock instead of failing
        engine_kwargs = {"connect_args": {"timeout": 120}}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats are "experimental"
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=GRACE_SECONDS,
                heartbeat_stale_trial_callback=queue_retry,
            )
    except ModuleNotFoundError as exc:
        raise ModelforgeError(
            f"--storage {masked_url(url)}: driver {exc.name} is not installed (pip install 'modelforge[tune]')"
        ) from None
    except (ArgumentError, OperationalError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise ModelforgeError(f"--storage {masked_url(url)}: cannot open ({reason})") from None


# ----------------------------------------------------------------------------- trial bookkeeping
@dataclass(frozen=True)
class TrialCounts:
    done: int  # complete, pruned, or failed by its hyperparameters (e.g. a non-finite loss)
    running: int
    killed: int  # failed because its worker died or was interrupted; retried


def count_trials(study: Any) -> TrialCounts:
    from optuna.trial import TrialState

    done = running = killed = 0
    for trial in study.get_trials(deepcopy=False):
        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            done += 1
        elif trial.state == TrialState.FAIL:
            if "error" in trial.user_attrs:
                done += 1
            else:
                killed += 1
        elif trial.state == TrialState.RUNNING:
            running += 1
    return TrialCounts(done, running, killed)


def worker_identity() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "started": process_start_time(pid)}


def process_start_time(pid: int) -> int | None:
    """Clock ticks since boot at which `pid` started (Linux), to tell a reused pid apart."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def process_alive(pid: int, started: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return started is None or process_start_time(pid) in (None, started)


def fail_dead_trials(study: Any) -> list[int]:
    """Mark RUNNING trials of dead workers failed and queue their parameters again."""
    import optuna
    from optuna.trial import TrialState

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fail_stale_trials is marked experimental
        optuna.storages.fail_stale_trials(study)  # other hosts: heartbeat older than the grace period
    host, failed = socket.gethostname(), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker") or {}
        if worker.get("host") != host or process_alive(int(worker.get("pid", 0)), worker.get("started")):
            continue
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except (ValueError, RuntimeError):
            continue  # another worker got there first
        queue_retry(study, trial)
        failed.append(trial.number)
    return failed


def queue_retry(study: Any, trial: Any) -> None:
    """Run a killed trial's parameters again as a new trial."""
    study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number})


@contextmanager
def heartbeat(storage: Any, trial: Any) -> Iterator[None]:
    """Record the trial's heartbeat every HEARTBEAT_SECONDS while it runs."""
    stop = threading.Event()
    trial_id = trial._trial_id  # Optuna keeps the storage id private; heartbeats need it

    def beat() -> None:
        while True:
            with contextlib.suppress(Exception):  # a missed beat only risks a late retry
                storage.record_heartbeat(trial_id)
            if stop.wait(HEARTBEAT_SECONDS):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
