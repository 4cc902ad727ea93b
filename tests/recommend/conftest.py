"""Tiny synthetic interactions with a planted structure: two user groups, two item groups.

Users rate items of their own group high (4–5) and the other group low (1–2); each user has
interacted with most items of their own group, in time order, so leave-last-out holds out one
of them. A model that learns the groups beats the global mean and the popularity list."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

N_USERS, N_ITEMS = 40, 24


def group_of_user(user: int) -> int:
    return user % 2


def group_of_item(item: int) -> int:
    return item % 2


@pytest.fixture(scope="session")
def interactions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    rows = []
    for user in range(N_USERS):
        own = [i for i in range(N_ITEMS) if group_of_item(i) == group_of_user(user)]
        other = [i for i in range(N_ITEMS) if group_of_item(i) != group_of_user(user)]
        picked = list(rng.choice(own, size=9, replace=False)) + list(rng.choice(other, size=3, replace=False))
        for step, item in enumerate(rng.permutation(picked)):
            liked = group_of_item(int(item)) == group_of_user(user)
            rating = int(rng.integers(4, 6)) if liked else int(rng.integers(1, 3))
            rows.append((f"u{user}", f"i{item}", rating, 1000 * user + step))
    folder = tmp_path_factory.mktemp("interactions")
    ratings = pd.DataFrame(rows, columns=["user_id", "item_id", "stars", "when"])
    ratings.to_csv(folder / "ratings.csv", index=False)
    users = pd.DataFrame(
        {
            "user_id": [f"u{u}" for u in range(N_USERS)],
            "age": rng.integers(18, 70, N_USERS),
            "group": [f"g{group_of_user(u)}" for u in range(N_USERS)],
        }
    )
    users.to_csv(folder / "users.csv", index=False)
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(N_ITEMS)], "kind": [f"k{i % 2}" for i in range(N_ITEMS)]})
    items.to_csv(folder / "items.csv", index=False)
    return {"ratings": folder / "ratings.csv", "users": folder / "users.csv", "items": folder / "items.csv"}


@pytest.fixture(scope="session")
def recommend_config(interactions: dict[str, Path]) -> Callable[..., dict[str, Any]]:
    """A factory of config dicts for the synthetic table (1 thread: the test machine is small and shared)."""
    return partial(config_for, interactions)


def config_for(files: dict[str, Path], feedback: str = "explicit", model: str = "mf", **train: object) -> dict:
    section = {"user": "user_id", "item": "item_id", "rating": "stars", "time": "when", "feedback": feedback}
    if model == "two_tower":
        section.update(user_features=str(files["users"]), item_features=str(files["items"]))
    return {
        "task": "recommendation",
        "seed": 0,
        "data": {"train": str(files["ratings"])},
        "recommend": section,
        "model": {"type": model, "dim": 8},
        "train": {"epochs": 30, "batch_size": 64, "lr": 0.03, "weight_decay": 0.0, "threads": 1, **train},
    }
