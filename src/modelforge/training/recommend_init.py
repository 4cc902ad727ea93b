"""`modelforge init` for recommendation: a MovieLens-100k folder, or a table of user-item interactions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from modelforge.errors import DataError

# column names people give users, items, ratings and times, in the order they are tried
USER_COLUMNS = ("user", "user_id", "userid", "customer", "customer_id", "member_id")
ITEM_COLUMNS = ("item", "item_id", "itemid", "movie", "movie_id", "movieid", "product", "product_id", "track_id")
RATING_COLUMNS = ("rating", "score", "stars", "value")
TIME_COLUMNS = ("timestamp", "time", "date", "datetime")


def recommendation_config(data: Path, out: Path | None) -> dict[str, Any]:
    """An explicit-feedback MF config when the data has ratings, an implicit two-tower ranking config when not."""
    base = out.resolve().parent if out else Path.cwd()
    settings: dict[str, Any]
    if data.is_dir() and (data / "u.data").is_file():
        settings = {"format": "movielens-100k", "feedback": "explicit"}
    else:
        settings = interaction_columns(data)
    explicit = settings["feedback"] == "explicit"
    return {
        "task": "recommendation",
        "seed": 0,
        "data": {"train": os.path.relpath(data.resolve(), base)},
        "recommend": settings,
        "model": {"type": "mf", "dim": 32} if explicit else {"type": "two_tower", "dim": 32},
        "train": {"epochs": 25, "batch_size": 512, "lr": 5.0e-3, "weight_decay": 0.05 if explicit else 0.0},
    }


def interaction_columns(data: Path) -> dict[str, Any]:
    """Which columns of a table hold users, items, ratings and times (by their names)."""
    from modelforge.data.readers import read_data

    frame = read_data(data)
    by_name = {str(c).lower(): str(c) for c in frame.columns}

    def find(candidates: tuple[str, ...]) -> str | None:
        return next((by_name[c] for c in candidates if c in by_name), None)

    user, item = find(USER_COLUMNS), find(ITEM_COLUMNS)
    if user is None or item is None:
        role = "user" if user is None else "item"
        raise DataError(
            f"{data}: no {role} column found (looked for {', '.join(USER_COLUMNS if user is None else ITEM_COLUMNS)}; "
            f"columns: {', '.join(map(str, frame.columns))}); rename it, or write the recommend section by hand"
        )
    rating, time = find(RATING_COLUMNS), find(TIME_COLUMNS)
    return {
        "user": user,
        "item": item,
        "rating": rating,
        "time": time,
        "feedback": "explicit" if rating is not None else "implicit",
    }
