"""The HTTP app over real runs: answers, status codes for every limit, metrics, batching equality."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from modelforge.errors import RunError
from modelforge.run import load_run
from modelforge.serve.app import ServeSettings, create_app
from modelforge.serve.services import PredictService, ServeError, load_services


@pytest.fixture(scope="module")
def services(digits_run: Path, diabetes_run: Path) -> dict[str, Any]:
    return load_services([f"digits={digits_run}", f"diabetes={diabetes_run}"])


@pytest.fixture(scope="module")
def client(services: dict[str, Any]):
    with TestClient(create_app(services)) as test_client:
        yield test_client


def digit_records(pixels: np.ndarray, rows: range) -> list[dict[str, Any]]:
    return [{"x": pixels[i].tolist()} for i in rows]


def test_models_health_and_playground(client: TestClient) -> None:
    models = client.get("/v1/models").json()["models"]
    assert [(m["name"], m["task"]) for m in models] == [("digits", "classification"), ("diabetes", "regression")]
    (image,) = models[0]["features"]  # with what a client needs to turn a picture into the model's pixels
    assert {k: image[k] for k in ("name", "kind", "shape", "pixel_range")} == {
        "name": "x",
        "kind": "image",
        "shape": [1, 8, 8],
        "pixel_range": [0.0, 1.0],
    }
    assert 0 < image["pixel_mean"] < 0.5 and len(models[0]["classes"]) == 10
    assert all(isinstance(f["example"], float) for f in models[1]["features"])  # the training medians
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    page = client.get("/")
    assert page.status_code == 200 and "modelforge playground" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN: the page works offline
    assert client.get("/openapi.json").json()["paths"]["/v1/models/{name}/predict"]["post"]


def test_predictions_match_the_run_in_request_order(client: TestClient, digits_run: Path, digits_pixels) -> None:
    records = digit_records(digits_pixels, range(0, 40, 3))
    answer = client.post("/v1/models/digits/predict", json={"records": records})
    assert answer.status_code == 200
    predictions = answer.json()["predictions"]
    expected = load_run(digits_run).predict(
        __import__("pandas").DataFrame({"x": [digits_pixels[i] for i in range(0, 40, 3)]})
    )
    assert [p["label"] for p in predictions] == expected["prediction"].tolist()
    for p, (_, row) in zip(predictions, expected.iterrows(), strict=True):
        assert sum(p["probabilities"].values()) == pytest.approx(1.0)
        assert p["probabilities"]["3"] == pytest.approx(row["probability_3"], abs=1e-6)
    timing = {name: float(ms) for name, ms in re.findall(r"(\w+);dur=([\d.]+)", answer.headers["server-timing"])}
    assert set(timing) == {"queue", "model"} and timing["model"] > 0


def test_torch_engine_serves_a_frozen_graph_that_answers_like_the_eager_model(
    client: TestClient, digits_run: Path, digits_pixels
) -> None:
    engines = {m["name"]: m["engine"] for m in client.get("/v1/models").json()["models"]}
    assert all(engine.startswith("torch frozen graph") for engine in engines.values()), engines
    [eager] = load_services([f"digits={digits_run}"], "eager").values()
    assert isinstance(eager, PredictService) and eager.describe()["engine"] == "torch eager"
    records = digit_records(digits_pixels, range(50, 90))
    expected = eager.predict_batch([eager.validate(records, None)])[0]
    served = client.post("/v1/models/digits/predict", json={"records": records}).json()["predictions"]
    assert [p["label"] for p in served] == [p["label"] for p in expected]
    for mine, theirs in zip(served, expected, strict=True):
        for label, probability in theirs["probabilities"].items():
            assert mine["probabilities"][label] == pytest.approx(probability, abs=1e-5)


def test_regression_answers_value(client: TestClient, diabetes_rows) -> None:
    answer = client.post("/v1/models/diabetes/predict", json={"records": diabetes_rows[:3]})
    values = [p["value"] for p in answer.json()["predictions"]]
    assert answer.status_code == 200 and len(values) == 3 and all(isinstance(v, float) for v in values)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"records": [{"x": "/etc/passwd"}]}, ["body", "records", 0, "x"]),
        ({"records": [{"x": [[1, 2], [3]]}, {"x": [[0.5]]}, {"y": 3}]}, ["body", "records", 0, "x"]),
        ({"records": [{"X": [[1.0]]}]}, ["body", "records", 0, "X"]),
        ({"records": []}, ["body", "records"]),
        ({"records": "x"}, ["body", "records"]),
        ({"rows": []}, ["body", "records"]),
        ([1, 2], ["body"]),
    ],
)
def test_bad_records_get_422_naming_row_and_field(client: TestClient, body: Any, where: list[Any]) -> None:
    answer = client.post("/v1/models/digits/predict", json=body)
    assert answer.status_code == 422
    assert where in [d["loc"] for d in answer.json()["detail"]]


def test_wrong_types_and_garbage_never_get_500(client: TestClient, diabetes_rows) -> None:
    bad_bodies = [
        b"{not json",
        b'{"records": [{"x": NaN}]}',
        b'{"records": [{"x": [[1e308, -1e308]]}]}',
        b'{"records": [{"x": [[[[1]]]]}]}',
        b'{"records": [{"x": [[1, 2, 3, 4, 5]]}]}',
        json.dumps({"records": [{**diabetes_rows[0], "bmi": "fat"}]}).encode(),
        json.dumps({"records": [{**diabetes_rows[0], "bmi": True}]}).encode(),
    ]
    for index, body in enumerate(bad_bodies):
        model = "diabetes" if index >= 5 else "digits"
        answer = client.post(f"/v1/models/{model}/predict", content=body, headers={"content-type": "application/json"})
        assert answer.status_code in (200, 422), (body, answer.status_code, answer.text)
    odd_but_fine = client.post("/v1/models/digits/predict", json={"records": [{"x": [[1, 2, 3, 4, 5]]}]})
    assert odd_but_fine.status_code == 200  # any 2-D image is resized to the training size


def test_unknown_model_and_wrong_endpoint_are_404(client: TestClient) -> None:
    missing = client.post("/v1/models/nope/predict", json={"records": [{}]})
    assert missing.status_code == 404 and "digits" in missing.json()["detail"]
    assert client.post("/v1/models/digits/generate", json={"prompt": "hi"}).status_code == 404
    assert client.get("/v1/models/nope").status_code == 404


def test_body_limit_413_with_and_without_content_length(services: dict[str, Any], digits_pixels) -> None:
    app = create_app(services, ServeSettings(max_body_bytes=2000))
    big = json.dumps({"records": digit_records(digits_pixels, range(20))}).encode()
    headers = {"content-type": "application/json"}
    with TestClient(app) as small_client:
        assert small_client.post("/v1/models/digits/predict", content=big, headers=headers).status_code == 413
        chunked = small_client.post(
            "/v1/models/digits/predict", content=iter([big[:1500], big[1500:]]), headers=headers
        )
        assert chunked.status_code == 413
        one = json.dumps({"records": digit_records(digits_pixels, range(1))})
        assert small_client.post("/v1/models/digits/predict", content=one, headers=headers).status_code == 200


def test_api_key_guards_v1_and_metrics_only(services: dict[str, Any], digits_pixels) -> None:
    app = create_app(services, ServeSettings(api_key="s3cret"))
    body = {"records": digit_records(digits_pixels, range(1))}
    with TestClient(app) as guarded:
        assert guarded.post("/v1/models/digits/predict", json=body).status_code == 401
        wrong = guarded.post("/v1/models/digits/predict", json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        right = guarded.post("/v1/models/digits/predict", json=body, headers={"Authorization": "Bearer s3cret"})
        assert right.status_code == 200
        assert guarded.get("/metrics").status_code == 401
        assert guarded.get("/healthz").status_code == 200 and guarded.get("/").status_code == 200


def gated(service: PredictService, gate: threading.Event) -> None:
    """Hold the model's forward passes until `gate` opens (the real predict runs afterwards)."""
    real = service.predict_batch

    def wait_then_predict(items: list[Any]) -> list[Any]:
        gate.wait(10)
        return real(items)

    service.predict_batch = wait_then_predict  # type: ignore[method-assign]


def test_full_queue_429_with_retry_after_and_timeout_504(digits_run: Path, digits_pixels, serve_live) -> None:
    services = load_services([f"digits={digits_run}"])
    gate = threading.Event()
    gated(services["digits"], gate)
    app = create_app(services, ServeSettings(max_batch_size=1, max_queue=2, timeout_s=2.0))
    body = {"records": digit_records(digits_pixels, range(1))}

    async def scenario(url: str) -> tuple[httpx.Response, list[httpx.Response], httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=20) as http:
            first = asyncio.create_task(http.post("/v1/models/digits/predict", json=body))
            await asyncio.sleep(0.2)  # running, held by the gate
            queued = [asyncio.create_task(http.post("/v1/models/digits/predict", json=body)) for _ in range(2)]
            await asyncio.sleep(0.2)
            rejected = await http.post("/v1/models/digits/predict", json=body)
            gate.set()
            answered = await asyncio.gather(first, *queued)
            gate.clear()
            timed_out = await http.post("/v1/models/digits/predict", json=body)
            gate.set()
            return rejected, answered, timed_out

    with serve_live(app) as url:
        rejected, answered, timed_out = asyncio.run(scenario(url))
        metrics = httpx.get(f"{url}/metrics").text
    assert rejected.status_code == 429 and int(rejected.headers["retry-after"]) >= 1
    assert [r.status_code for r in answered] == [200, 200, 200]
    assert timed_out.status_code == 504
    lines = metrics.splitlines()
    counted = [f'modelforge_requests_total{{route="/v1/models/{{name}}/predict",status="{s}"}} 1' for s in (429, 504)]
    assert all(line in lines for line in counted)


def test_batched_answers_equal_unbatched_answers(services: dict[str, Any], digits_pixels, serve_live) -> None:
    records = digit_records(digits_pixels, range(48))
    unbatched_app = create_app(services, ServeSettings(max_batch_size=1))
    with TestClient(unbatched_app) as one_by_one:
        alone = [one_by_one.post("/v1/models/digits/predict", json={"records": [r]}).json() for r in records]

    async def concurrent(url: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            calls = [http.post("/v1/models/digits/predict", json={"records": [r]}) for r in records]
            return [r.json() for r in await asyncio.gather(*calls)]

    batched_app = create_app(services, ServeSettings(max_batch_size=16, max_wait_ms=20))
    with serve_live(batched_app) as url:
        together = asyncio.run(concurrent(url))
        metrics = httpx.get(f"{url}/metrics").text
    batches = float(metrics.split('modelforge_batch_size_rows_count{model="digits"} ')[1].split()[0])
    assert batches < len(records)  # some requests really shared a forward pass
    for one, many in zip(alone, together, strict=True):
        [a], [b] = one["predictions"], many["predictions"]
        assert a["label"] == b["label"]
        assert np.allclose(list(a["probabilities"].values()), list(b["probabilities"].values()), atol=1e-6)


def test_metrics_exposition(client: TestClient, digits_pixels) -> None:
    client.post("/v1/models/digits/predict", json={"records": digit_records(digits_pixels, range(5))})
    lines = client.get("/metrics").text.splitlines()
    expected = [
        "# TYPE modelforge_request_latency_seconds histogram",
        'modelforge_queue_depth{model="digits"} 0',
        "# TYPE modelforge_batch_size_rows histogram",
    ]
    missing = [line for line in expected if line not in lines]
    assert not missing
    prefixes = ['modelforge_batch_size_rows_bucket{model="digits",le="8"} ', 'modelforge_requests_total{route="/v1']
    assert all(any(line.startswith(p) for line in lines) for p in prefixes)


def test_load_errors_are_one_line(tmp_path: Path, digits_run: Path) -> None:
    with pytest.raises(RunError, match="run directory not found"):
        load_services([str(tmp_path / "missing")])
    with pytest.raises(ServeError, match="used twice"):
        load_services([f"a={digits_run}", f"a={digits_run}"])
    with pytest.raises(ServeError, match="model name"):
        load_services([f"bad name={digits_run}"])
