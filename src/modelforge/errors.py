"""The error hierarchy: every user-facing failure is a ModelforgeError with a one-line message.

The CLI turns any ModelforgeError into that line on stderr and exit code 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ModelforgeError(Exception):
    """Base class of errors caused by user input (config, data, files, requests)."""


class ConfigError(ModelforgeError):
    """The configuration is invalid; the message lists every problem as `path: problem`."""


class DataError(ModelforgeError):
    """A data file or column cannot be used as asked."""


class NotFittedError(ModelforgeError):
    """A preprocessor was used before `fit`."""


class RegistryError(ModelforgeError):
    """A name is not registered (or registered twice)."""


class RunError(ModelforgeError):
    """A run directory is missing or incomplete."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ' (did you mean X?)' suffix when a close match exists, else ''."""
    matches = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {matches[0]}?)" if matches else ""
