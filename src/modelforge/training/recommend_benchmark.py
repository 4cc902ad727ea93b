"""What `modelforge benchmark` times on a recommendation run (`mf`, `two_tower`).

    modelforge benchmark runs/movielens --engine all   # torch and onnx (after `export --format onnx`)

One request is one known user scored against every item (the users × items row that `predict`
ranks for that user's top K); a batch is 64 users at once. Users are the run's own, taken in
turn. The engine is the run's module (user and item encoders, one matrix product) or its exported
`score(user, item)` graph standing in for it (`OnnxPairScorer`, every (user, item) pair through
onnxruntime), both through `score_all_items` as `predict` calls them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelforge.inference import Workload
from modelforge.training.recommend import score_all_items


def recommender_workload(run: Any, batch_rows: int = 64) -> Workload:
    """One user scored against all items (batch 1), and `batch_rows` users."""
    users = np.array(sorted(run.seen), dtype=np.int64)
    if len(users) == 0:  # no training history stored: the ids the run knows
        users = np.arange(1, len(run.vocabulary.users) + 1, dtype=np.int64)
    batches = [users[(np.arange(batch_rows) + start) % len(users)] for start in range(0, len(users), batch_rows)]

    def one(index: int) -> np.ndarray:
        return score_all_items(run.model, users[index % len(users) : index % len(users) + 1], run.tables)

    def batch(index: int) -> np.ndarray:
        return score_all_items(run.model, batches[index % len(batches)], run.tables)

    return Workload(f"one user scored against all items; batch: {batch_rows} users", one, batch, batch_rows)
