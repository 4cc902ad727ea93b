"""`train.threads: adaptive` for every training loop: the CPU thread count that trains fastest now, measured."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from modelforge.config import TrainConfig


@dataclass
class ThreadChooser:
    """`train.threads: adaptive`: the CPU thread count that trains fastest *now*, re-measured every `period` steps.

    On a shared machine, OpenMP workers waiting for a descheduled peer make two threads several
    times slower than one; on an idle machine more threads win. So the first steps of each period
    alternate between the candidates (real training steps, timed) and the rest of the period runs
    with the faster one. Thread counts can change float rounding, so `auto` is opt-in: a fixed
    count (or `auto`, chosen once before training) keeps runs bitwise reproducible.
    """

    candidates: tuple[int, ...]
    period: int = 100
    trials: int = 3
    chosen: int = 1
    timings: dict[int, list[float]] = field(default_factory=dict)

    @classmethod
    def for_config(cls, cfg: TrainConfig, device: torch.device) -> ThreadChooser:
        most = torch.get_num_threads()
        if cfg.threads != "adaptive" or device.type != "cpu" or most == 1:
            return cls((most,), chosen=most)
        return cls((1, most), chosen=most)

    @property
    def measures(self) -> bool:
        """Whether more than one thread count is in play (train.threads: adaptive on a multi-core CPU)."""
        return len(self.candidates) > 1

    def threads_for(self, step: int) -> int:
        phase = step % self.period
        if len(self.candidates) > 1 and phase < self.trials * len(self.candidates):
            return self.candidates[phase % len(self.candidates)]
        return self.chosen

    def record(self, step: int, threads: int, seconds: float) -> None:
        phase = step % self.period
        measuring = self.trials * len(self.candidates)
        if len(self.candidates) == 1 or phase >= measuring:
            return
        self.timings.setdefault(threads, []).append(seconds)
        if phase == measuring - 1:
            self.chosen = min(self.candidates, key=lambda n: sorted(self.timings[n])[len(self.timings[n]) // 2])
            self.timings.clear()

    @contextlib.contextmanager
    def timed(self, step: int) -> Iterator[None]:
        """Run one training step on the thread count chosen for it, and record how long it took."""
        threads = self.threads_for(step)
        if self.measures:
            torch.set_num_threads(threads)
        started = time.perf_counter()
        yield
        self.record(step, threads, time.perf_counter() - started)
