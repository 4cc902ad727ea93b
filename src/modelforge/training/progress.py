"""Live progress: a rich bar on a terminal, one line per epoch everywhere."""

from __future__ import annotations

import sys
import time
from typing import Any


class EpochProgress:
    """Shows loss and samples/s while an epoch runs; refreshes at most ten times a second."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._bar: Any = None
        self._task: Any = None
        self._next_refresh = 0.0

    def start(self, epoch: int, epochs: int, batches: int) -> None:
        self._started = time.perf_counter()
        if not self.enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn(f"epoch {epoch}/{epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeRemainingColumn(),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task("train", total=batches, status="")

    def update(self, batch: int, samples: int, loss: Any) -> None:
        if self._bar is None:
            return
        now = time.perf_counter()
        if now < self._next_refresh:
            return
        self._next_refresh = now + 0.1
        rate = samples / max(now - self._started, 1e-9)
        self._bar.update(self._task, completed=batch, status=f"loss {float(loss):.4f} · {rate:,.0f} samples/s")

    def finish(self, row: dict[str, Any]) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        shown = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())
        print(shown, file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        """One line between the epoch rows (why training stopped, for instance)."""
        print(text, file=sys.stderr, flush=True)
