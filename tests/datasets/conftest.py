"""Fixtures of the dataset tests: loopback HTTP mirrors (see loopback_mirror.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from loopback_mirror import SHARED_DATASETS, Mirror, serve


@pytest.fixture
def shared_mirror() -> Iterator[Mirror]:
    """../shared/datasets over loopback HTTP."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"{SHARED_DATASETS} is not on this machine")
    yield from serve(Mirror(SHARED_DATASETS))


@pytest.fixture
def make_mirror() -> Iterator[Callable[[Path], Mirror]]:
    """A loopback mirror of any folder: `make_mirror(folder)`."""
    servers = []

    def start(root: Path) -> Mirror:
        server = serve(Mirror(root))
        servers.append(server)
        return next(server)

    yield start
    for server in servers:
        next(server, None)
