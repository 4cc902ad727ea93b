"""`modelforge init` for recommendation: a MovieLens-100k folder, or a table of user-item interactions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from modelforge.errors import DataError, did_you_mean

# column names people give users, items, ratings and times, in the order they are tried
USER_COLUMNS = ("user", "user_id", "userid", "uid", "customer", "customer_id", "member_id", "client_id", "account_id")
ITEM_COLUMNS = (
    "item", "item_id", "itemid", "iid", "movie", "movie_id", "movieid", "product", "product_id", "sku",
    "article_id", "book_id", "isbn", "track_id", "song_id", "asin",
)  # fmt: skip
RATING_COLUMNS = ("rating", "score", "stars", "value", "rate", "overall")
TIME_COLUMNS = ("timestamp", "time", "date", "datetime", "ts", "unix_timestamp", "created_at", "event_time")


def recommendation_config(data: Path, out: Path | None, target: str | None = None) -> dict[str, Any]:
    """An explicit-feedback MF config when the data has ratings (--target names the rating column, else it is
    found by name), an implicit two-tower ranking config when not."""
    base = out.resolve().parent if out else Path.cwd()
    settings: dict[str, Any]
    if data.is_dir() and (data / "u.data").is_file():
        if target is not None:
            raise DataError(f"--target: {data} is a MovieLens folder, whose ratings are its own; leave --target out")
        settings = {"format": "movielens-100k", "feedback": "explicit"}
    else:
        settings = interaction_columns(data, target)
    explicit = settings["feedback"] == "explicit"
    return {
        "task": "recommendation",
        "seed": 0,
        "data": {"train": os.path.relpath(data.resolve(), base)},
        "recommend": settings,
        "model": {"type": "mf", "dim": 32} if explicit else {"type": "two_tower", "dim": 32},
        "train": {"epochs": 25, "batch_size": 512, "lr": 5.0e-3, "weight_decay": 0.05 if explicit else 0.0},
    }


def interaction_columns(data: Path, target: str | None = None) -> dict[str, Any]:
    """Which columns of a table hold users, items, ratings (`target`, else by name) and times (by their names)."""
    from modelforge.data.readers import read_data

    frame = read_data(data)
    if target is not None and target not in frame.columns:
        raise DataError(
            f"--target: column {target!r} not in {data}{did_you_mean(target, frame.columns)}; "
            f"columns: {', '.join(map(str, frame.columns))}"
        )
    user, item, rating, time = column_roles(list(frame.columns), target)
    if user is None or item is None:
        role = "user" if user is None else "item"
        raise DataError(
            f"{data}: no {role} column found (looked for {', '.join(USER_COLUMNS if user is None else ITEM_COLUMNS)}; "
            f"columns: {', '.join(map(str, frame.columns))}); rename it, or write the recommend section by hand"
        )
    return {
        "user": user,
        "item": item,
        "rating": rating,
        "time": time,
        "feedback": "explicit" if rating is not None else "implicit",
    }


def column_roles(
    columns: list[Any], target: str | None = None
) -> tuple[str | None, str | None, str | None, str | None]:
    """The user, item, rating (`target`, else by name) and time columns among these, found by their names."""
    by_name = {str(c).lower(): str(c) for c in columns}

    def find(candidates: tuple[str, ...]) -> str | None:
        return next((by_name[c] for c in candidates if c in by_name), None)

    rating = target if target is not None else find(RATING_COLUMNS)
    return find(USER_COLUMNS), find(ITEM_COLUMNS), rating, find(TIME_COLUMNS)


def recognizes_interactions(path: Path, target: str | None = None) -> bool:
    """For `modelforge init` with no --task: a table of interactions only — a user and an item column (by their
    names) and at most a rating (--target, or by name) and a time beside them."""
    from modelforge.data.readers import sample_table

    frame = sample_table(path, rows=5)
    if frame is None:
        return False
    columns = list(frame.columns)
    roles = column_roles(columns, target)
    return None not in roles[:2] and {str(c) for c in columns} <= {role for role in roles if role is not None}
