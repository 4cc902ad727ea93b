"""SIGTERM / SIGINT during training: finish the current step, save a checkpoint, exit 143 / 130.

A second SIGINT aborts at once (KeyboardInterrupt). Standard library only, so the CLI can
import `TrainingInterrupted` without importing torch.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}


class TrainingInterrupted(Exception):
    """Training stopped on a signal after saving a checkpoint; `exit_code` is 143 or 130."""

    def __init__(self, signal_name: str, exit_code: int, steps: int, checkpoint: Path | None) -> None:
        self.signal_name, self.exit_code, self.steps, self.checkpoint = signal_name, exit_code, steps, checkpoint
        where = f"checkpoint {checkpoint}" if checkpoint else "no checkpoint (not the writing rank)"
        super().__init__(f"stopped by {signal_name} after step {steps}; {where}")


class StopSignal:
    """Records SIGTERM / SIGINT while installed; the loop polls `requested` after each step."""

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self._previous: dict[signal.Signals, Any] = {}

    @property
    def requested(self) -> bool:
        return self.received is not None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.received or signal.SIGTERM, 143)

    def interrupted(self, steps: int, checkpoint: Path | None) -> TrainingInterrupted:
        received = self.received or signal.SIGTERM
        return TrainingInterrupted(received.name, self.exit_code, steps, checkpoint)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: abort without saving
        self.received = signal.Signals(signum)
        print(
            f"{self.received.name}: finishing the current step and saving a checkpoint (Ctrl-C again to abort)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> StopSignal:
        # signal handlers can only be set from the main thread (tuning trials may run elsewhere)
        if threading.current_thread() is threading.main_thread():
            for signum in EXIT_CODES:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
