"""task: recommendation in-process: splits, metrics, explicit and implicit training, features, predict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import modelforge
from modelforge.config import load_config
from modelforge.run import load_run
from modelforge.training.recommend import (
    RecommenderRun,
    load_interactions,
    mask_seen,
    ranking_metrics,
    split_interactions,
)

N_USERS = 40  # as in conftest: user uN and item iM belong to group N % 2 and M % 2


@pytest.fixture(scope="module")
def explicit_run(recommend_config: Any, tmp_path_factory: pytest.TempPathFactory) -> RecommenderRun:
    return modelforge.train(recommend_config(), tmp_path_factory.mktemp("explicit") / "run")


@pytest.fixture(scope="module")
def implicit_run(recommend_config: Any, tmp_path_factory: pytest.TempPathFactory) -> RecommenderRun:
    config = recommend_config("implicit", lr=0.02)
    return modelforge.train(config, tmp_path_factory.mktemp("implicit") / "run")


def test_leave_last_out_holds_out_each_users_last_and_second_last(recommend_config: Any) -> None:
    config = load_config(recommend_config("implicit"))
    frame, _, _ = load_interactions(config)
    train, valid, test = split_interactions(frame, config.recommend, seed=0)
    assert len(test) == len(valid) == N_USERS and len(train) == len(frame) - 2 * N_USERS
    last = frame.sort_values("time").groupby("user").tail(1).set_index("user")["item"]
    assert (test.set_index("user")["item"].sort_index() == last.sort_index()).all()
    assert (train.groupby("user")["time"].max() < valid.set_index("user")["time"]).all()


def test_random_split_is_seeded_and_sized(recommend_config: Any) -> None:
    config = load_config(recommend_config())
    frame, _, _ = load_interactions(config)
    first = split_interactions(frame, config.recommend, seed=3)
    again = split_interactions(frame, config.recommend, seed=3)
    assert len(first[2]) == round(0.2 * len(frame)) and sum(map(len, first)) == len(frame)
    assert first[2].equals(again[2]) and not first[2].equals(split_interactions(frame, config.recommend, seed=4)[2])


def test_ranking_metrics_by_hand() -> None:
    scores = np.array([[0.0, 0.9, 0.8, 0.1], [0.0, 0.1, 0.2, 0.3]])
    scores = mask_seen(scores, np.array([1, 2]), {1: np.array([1])})  # user 1 has seen item 1
    metrics = ranking_metrics(scores, np.array([2, 1]), k=2)
    # user 1: item 2 ranks first (item 1 masked) → hit, gain 1; user 2: item 1 ranks third → miss
    assert metrics == {"recall@2": 0.5, "ndcg@2": 0.5}


def test_explicit_mf_beats_the_global_mean(explicit_run: RecommenderRun) -> None:
    metrics = explicit_run.metrics
    assert metrics["rmse"] < 0.75 * metrics["baseline_global_mean_rmse"], metrics
    assert explicit_run.headline == ("rmse", "baseline_global_mean_rmse")


def test_implicit_mf_beats_popularity(implicit_run: RecommenderRun) -> None:
    metrics = implicit_run.metrics
    assert metrics["n"] == N_USERS
    assert metrics["ndcg@10"] > 1.2 * metrics["popularity_ndcg@10"], metrics
    assert metrics["ndcg_ratio_to_popularity"] == pytest.approx(metrics["ndcg@10"] / metrics["popularity_ndcg@10"])


def test_top_k_skips_seen_items_and_cold_users_get_popularity(implicit_run: RecommenderRun) -> None:
    ratings = pd.read_csv(implicit_run.config.data.train)
    top = implicit_run.predict(["u0", "u1", "stranger"], k=5)
    assert list(top.columns) == ["user", "rank", "item", "score", "cold_start"] and len(top) == 15
    for user in ("u0", "u1"):
        mine = top[top["user"] == user]
        history = ratings[ratings["user_id"] == user].sort_values("when")["item_id"]
        seen = set(history.iloc[:-1])  # train + valid; the held-out last item may be recommended
        assert not seen & set(mine["item"]) and not mine["cold_start"].any()
        assert mine["score"].is_monotonic_decreasing
    stranger = top[top["user"] == "stranger"]
    assert stranger["cold_start"].all() and list(stranger["item"]) == [
        implicit_run.vocabulary.items[i - 1] for i in implicit_run.popularity[:5]
    ]


def test_pairs_get_ratings_and_unknown_pairs_the_global_mean(explicit_run: RecommenderRun) -> None:
    users = [f"u{u}" for u in range(N_USERS) for _ in range(24)]
    items = [f"i{i}" for _ in range(N_USERS) for i in range(24)]
    rated = explicit_run.predict(pd.DataFrame({"user_id": [*users, "nobody"], "item_id": [*items, "i0"]}))
    assert list(rated.columns) == ["user", "item", "rating", "cold_start"]
    assert rated["rating"].between(1, 5).all() and rated["cold_start"].tolist() == [False] * len(users) + [True]
    assert rated["rating"].iloc[-1] == pytest.approx(explicit_run.model_info["input_spec"]["global_mean"])
    same = np.array([int(u[1:]) % 2 == int(i[1:]) % 2 for u, i in zip(users, items, strict=True)])
    values = rated["rating"].to_numpy()[:-1]
    assert values[same].mean() > values[~same].mean() + 1.5


def test_two_tower_reads_user_and_item_features(recommend_config: Any, tmp_path: Path) -> None:
    run = modelforge.train(recommend_config(model="two_tower", epochs=20), tmp_path / "run")
    spec = run.model_info["input_spec"]
    assert (spec["user_feature_dim"], spec["item_feature_dim"]) == (3, 2)  # age + group one-hot; kind one-hot
    assert run.tables["user_features"].shape == (spec["n_users"], 3)
    assert run.metrics["rmse"] < run.metrics["baseline_global_mean_rmse"]


def test_reloaded_run_predicts_the_same(explicit_run: RecommenderRun) -> None:
    again = load_run(explicit_run.path)
    assert isinstance(again, RecommenderRun)
    pd.testing.assert_frame_equal(again.predict(["u3", "u4"]), explicit_run.predict(["u3", "u4"]))
    held_out = pd.read_csv(explicit_run.config.data.train).head(50)
    assert again.evaluate(held_out)["rmse"] == pytest.approx(explicit_run.evaluate(held_out)["rmse"])
