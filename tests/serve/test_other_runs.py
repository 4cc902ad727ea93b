"""Recommendation and image-generation runs served like any run: same server, same limits."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from modelforge.serve.app import create_app
from modelforge.serve.services import load_services


@pytest.fixture(scope="module")
def client(recommend_run: Any, vae_run: Any):
    services = load_services([f"films={recommend_run.path}", f"faces={vae_run.path}"])
    with TestClient(create_app(services)) as test_client:
        yield test_client


def test_both_runs_are_listed_with_their_task(client: TestClient) -> None:
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert models["films"]["task"] == "recommendation"
    assert [f["name"] for f in models["films"]["features"]] == ["user", "item"]
    assert models["faces"]["task"] == "generation" and models["faces"]["classes"] == [str(d) for d in range(10)]


def test_recommendations_equal_the_run_and_pairs_get_values(client: TestClient, recommend_run: Any) -> None:
    records = [{"user": "u3"}, {"user": "u3", "item": "i5"}, {"user": "nobody"}, {"user": "u4", "item": "i999"}]
    answer = client.post("/v1/models/films/predict", json={"records": records, "k": 3})
    assert answer.status_code == 200, answer.text
    top, pair, cold_user, cold_pair = answer.json()["predictions"]

    expected = recommend_run.predict(pd.DataFrame({"user": ["u3"]}), k=3)
    assert [i["item"] for i in top["items"]] == expected["item"].tolist() and not top["cold_start"]
    assert [i["score"] for i in top["items"]] == pytest.approx(expected["score"].tolist(), abs=1e-5)
    rating = recommend_run.predict(pd.DataFrame({"user": ["u3"], "item": ["i5"]}))["rating"].iloc[0]
    assert pair == {"value": pytest.approx(rating, abs=1e-5), "cold_start": False}
    popular = recommend_run.predict(pd.DataFrame({"user": ["nobody"]}), k=3)["item"].tolist()
    assert cold_user["cold_start"] and [i["item"] for i in cold_user["items"]] == popular
    assert all(i["score"] is None for i in cold_user["items"])  # no NaN in the JSON
    assert cold_pair["cold_start"] and cold_pair["value"] == pytest.approx(
        recommend_run.model_info["input_spec"]["global_mean"]
    )

    default_k = client.post("/v1/models/films/predict", json={"records": [{"user": 7}]}).json()["predictions"][0]
    assert len(default_k["items"]) == 5  # the run's recommend.k; integer ids are read as strings


def test_bad_recommendation_records_name_the_row_and_field(client: TestClient) -> None:
    answer = client.post("/v1/models/films/predict", json={"records": [{"user": "u1"}, {"item": "i1"}, {"user": True}]})
    assert answer.status_code == 422
    locations = [d["loc"] for d in answer.json()["detail"]]
    assert ["body", "records", 1, "user"] in locations and ["body", "records", 2, "user"] in locations
    unknown = client.post("/v1/models/films/predict", json={"records": [{"user": "u1", "age": 3}]})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "records", 0, "age"]
    assert client.post("/v1/models/films/images", json={}).status_code == 404


def test_images_are_pngs_of_the_asked_class(client: TestClient, vae_run: Any) -> None:
    answer = client.post("/v1/models/faces/images", json={"n": 4, "label": "7", "seed": 3, "grid": True})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [i["label"] for i in body["images"]] == ["7"] * 4
    first = Image.open(io.BytesIO(base64.b64decode(body["images"][0]["png"])))
    assert first.size == (8, 8) and first.mode == "L"
    expected, _ = vae_run.sample(4, "7", seed=3)
    assert np.abs(np.asarray(first, dtype=np.float64) / 255 - expected[0, 0]).max() <= 1 / 255 + 1e-6
    assert Image.open(io.BytesIO(base64.b64decode(body["grid"]))).size[0] > 8
    again = client.post("/v1/models/faces/images", json={"n": 4, "label": "7", "seed": 3}).json()
    assert again["images"] == body["images"] and again["grid"] is None  # same seed, same images

    every_class = client.post("/v1/models/faces/images", json={"n": 10}).json()["images"]
    assert [i["label"] for i in every_class] == [str(d) for d in range(10)]
    bad_label = client.post("/v1/models/faces/images", json={"label": "cat"})
    assert bad_label.status_code == 422 and bad_label.json()["detail"][0]["loc"] == ["body", "label"]
    assert client.post("/v1/models/faces/images", json={"n": 0}).status_code == 422
    assert client.post("/v1/models/faces/predict", json={"records": [{"x": 1}]}).status_code == 404
