"""`modelforge train CFG --nproc N`: the same command under torchrun, one process per rank.

The config is validated here first, so bad input fails at once with exit code 2. torchrun
runs in its own session: a Ctrl-C or SIGTERM reaches it once, from here, and it passes it on
to every rank (which finish the step, save, and exit 130 / 143).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from types import FrameType

from modelforge.training.interrupt import EXIT_CODES


def without_nproc(argv: list[str]) -> list[str]:
    """The command line minus `--nproc N` / `--nproc=N`."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    return kept


def torchrun_command(nproc: int, argv: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "modelforge",
        *without_nproc(argv),
    ]


def run_torchrun(nproc: int, argv: list[str]) -> int:
    """Run the training under torchrun; the exit code is 143 / 130 after a signal, else torchrun's."""
    from modelforge.config import load_config

    command = without_nproc(argv)
    config_path = command[1]  # ["train", CONFIG, ...]
    overrides = [command[i + 1] for i, arg in enumerate(command[:-1]) if arg == "--set"]
    load_config(config_path, overrides)  # exit 2 on a bad config before any process starts
    child = subprocess.Popen(torchrun_command(nproc, argv), start_new_session=True)
    received: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        child.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in EXIT_CODES}
    try:
        code = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return EXIT_CODES[signal.Signals(received[0])] if received else code
