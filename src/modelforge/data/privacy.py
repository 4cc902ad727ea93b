"""Columns that look like personal data (e-mail addresses, phone numbers), found at init/train.

Finding one is a warning, not an error: the fix is a config decision, `data.drop` (remove the
column at load) or `data.hash` (replace each value by a stable digest), which then applies the
same way at train, predict, evaluate and report time.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

EMAIL = re.compile(r"^[\w.+'-]+@[\w-]+(\.[\w-]+)+$")
PHONE = re.compile(r"^\+?[\d\s().\-/]{7,24}$")
PHONE_NAMES = re.compile(r"phone|mobile|\btel\b|telephone|fax|cell", re.IGNORECASE)
SAMPLE = 500
SHARE = 0.5


class PersonalDataWarning(UserWarning):
    """A column looks like personal data and is neither dropped nor hashed."""


@dataclass(frozen=True)
class PersonalColumn:
    column: str
    kind: str  # "e-mail addresses" | "phone numbers"
    matches: int
    sampled: int

    def message(self) -> str:
        return (
            f"column {self.column!r} looks like {self.kind} ({self.matches} of {self.sampled} sampled values): "
            f"personal data; add it to data.drop or data.hash in the config"
        )


def looks_like_phone(text: str) -> bool:
    """7 to 15 digits written with separators (space, dash, dot, brackets) or a leading +."""
    if not PHONE.match(text):
        return False
    digits = sum(ch.isdigit() for ch in text)
    return 7 <= digits <= 15 and (text.startswith("+") or any(ch in text for ch in " -.()/"))


def find_personal_columns(frame: pd.DataFrame, skip: Iterable[str] = ()) -> list[PersonalColumn]:
    """Columns where at least half of the sampled values are e-mail addresses or phone numbers."""
    skipped = set(skip)
    found = []
    for column in frame.columns:
        if column in skipped:
            continue
        values = frame[column].dropna()
        phone_named = bool(PHONE_NAMES.search(str(column)))
        textual = not values.empty and isinstance(values.iloc[0], str)
        if not (textual or (phone_named and pd.api.types.is_integer_dtype(values) and not values.empty)):
            continue
        sample = values.head(SAMPLE).astype(str).str.strip()
        emails = int(sample.map(lambda v: bool(EMAIL.match(v))).sum())
        phones = int(sample.map(looks_like_phone).sum())
        if phone_named:  # a phone-named column may hold bare digits
            phones = max(phones, int(sample.str.fullmatch(r"\+?\d{7,15}").sum()))
        for kind, matches in (("e-mail addresses", emails), ("phone numbers", phones)):
            if matches and matches >= SHARE * len(sample):
                found.append(PersonalColumn(str(column), kind, matches, len(sample)))
                break
    return found


def warn_personal_columns(frame: pd.DataFrame, skip: Iterable[str] = ()) -> list[PersonalColumn]:
    """Emit a PersonalDataWarning per personal-looking column not in `skip`; returns them."""
    found = find_personal_columns(frame, skip)
    for column in found:
        warnings.warn(column.message(), PersonalDataWarning, stacklevel=3)
    return found
