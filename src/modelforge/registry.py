"""Registries by name: a decorator registers, `get` builds from a name with close-match hints."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from modelforge.errors import RegistryError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """A named table of entries (functions or specs). Duplicate names are an error."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(entry: T) -> T:
            if name in self._entries:
                raise RegistryError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = entry
            return entry

        return decorator

    def add(self, name: str, entry: T) -> None:
        self.register(name)(entry)

    def get(self, name: str) -> T:
        if name not in self._entries:
            known = ", ".join(sorted(self._entries))
            raise RegistryError(f"unknown {self.kind} {name!r}{did_you_mean(name, self._entries)}; known: {known}")
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries
