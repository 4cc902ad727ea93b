"""Columns that look like e-mail addresses or phone numbers warn at init and train; drop/hash silence them."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest

from modelforge.config import load_config
from modelforge.data.privacy import PersonalDataWarning, find_personal_columns
from modelforge.init import starter_config
from modelforge.training.recipe import load_splits

ROWS = pd.DataFrame(
    {
        "contact": ["ann@example.org", "bob.smith+x@mail.example.com", "cy@uni.example.edu", "dee@example.net"] * 5,
        "phone": ["+1 555 010 2233", "(030) 1234-5678", "555.010.9988", "+44 20 7946 0958"] * 5,
        "customer_id": ["1234567", "2345678", "3456789", "4567890"] * 5,
        "comment": ["likes email", "call me", "n/a", "ok"] * 5,
        "age": [31, 45, 52, 28] * 5,
        "label": ["yes", "no", "yes", "no"] * 5,
    }
)


def test_finds_email_and_phone_columns_only() -> None:
    found = {(c.column, c.kind) for c in find_personal_columns(ROWS)}
    assert found == {("contact", "e-mail addresses"), ("phone", "phone numbers")}


def test_init_warns(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    ROWS.to_csv(path, index=False)
    with pytest.warns(PersonalDataWarning) as caught:
        starter_config(path, "label", None, None)
    messages = [str(w.message) for w in caught]
    assert any("'contact' looks like e-mail addresses" in m and "data.drop or data.hash" in m for m in messages)
    assert any("'phone' looks like phone numbers" in m for m in messages)


def test_train_warns_unless_dropped_or_hashed(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    ROWS.to_csv(path, index=False)
    config = load_config({"data": {"train": str(path), "target": "label"}})
    with pytest.warns(PersonalDataWarning, match="'contact'"):
        load_splits(config)
    handled = load_config({"data": {"train": str(path), "target": "label", "drop": ["contact"], "hash": ["phone"]}})
    with warnings.catch_warnings():
        warnings.simplefilter("error", PersonalDataWarning)
        train, _, _ = load_splits(handled)
    assert "contact" not in train.columns and not train["phone"].str.contains(r"\d{3}[ .-]\d{3,4}").any()
