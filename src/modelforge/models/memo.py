"""Modules that remember results across training steps (a frozen encoder's pooled vectors), and the
one way to make them compute afresh for a while."""

from __future__ import annotations

import contextlib
from typing import Protocol, runtime_checkable


@runtime_checkable
class Memoizing(Protocol):
    def memo_suspended(self) -> contextlib.AbstractContextManager[None]:
        """Within it, training forwards neither read nor fill the memo."""
        ...
