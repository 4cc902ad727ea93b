"""Generation endpoint over a real (tiny) GPT run: plain JSON, server-sent events, errors."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from modelforge.errors import ModelforgeError
from modelforge.serve.app import ServeSettings, create_app
from modelforge.serve.services import GenerateService, load_services


@pytest.fixture(scope="module")
def client(gpt_run: Path):
    services = load_services([f"bard={gpt_run}"])
    with TestClient(create_app(services, ServeSettings(max_new_tokens=64))) as test_client:
        yield test_client


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines.get("event", "token"), json.loads(lines["data"])))
    return events


def test_listed_as_a_language_model(client: TestClient) -> None:
    [model] = client.get("/v1/models").json()["models"]
    assert model == {
        "name": "bard",
        "task": "language-modeling",
        "endpoint": "generate",
        "features": [],
        "classes": [],
        "engine": "torch eager, streams decoded together (continuous batching)",
    }
    assert client.post("/v1/models/bard/predict", json={"records": [{}]}).status_code == 404


def test_same_seed_same_text_as_the_generator(client: TestClient, gpt_run: Path) -> None:
    from modelforge.text.generate import load_generator

    body = {"prompt": "ROMEO:", "max_new_tokens": 20, "temperature": 0.8, "top_k": 10, "seed": 7}
    answer = client.post("/v1/models/bard/generate", json=body)
    assert answer.status_code == 200
    expected = load_generator(gpt_run).generate("ROMEO:", 20, 0.8, 10, None, 7)
    assert answer.json()["text"] == expected and answer.json()["new_tokens"] == 20


def test_streamed_tokens_add_up_to_the_whole_text(client: TestClient) -> None:
    body = {"prompt": "ROMEO:", "max_new_tokens": 12, "temperature": 0, "stream": True}
    with client.stream("POST", "/v1/models/bard/generate", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response.read().decode())
    tokens = [data["token"] for kind, data in events if kind == "token"]
    kind, done = events[-1]
    assert kind == "done" and len(tokens) == 12 and done["text"] == "".join(tokens)
    plain = client.post("/v1/models/bard/generate", json={**body, "stream": False}).json()
    assert plain["text"] == done["text"]  # temperature 0 is greedy: both ways give the same text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": "x" * 500}, "prompt"),  # longer than the model's context
        ({"prompt": "hi", "max_new_tokens": 65}, "max_new_tokens"),  # above the server's --max-new-tokens
        ({"prompt": "hi", "temperature": -1}, "temperature"),
        ({"prompt": "hi", "top_p": 1.5}, "top_p"),
        ({"prompt": 3}, "prompt"),
        ({"prompt": "hi", "stream": "yes please"}, "stream"),
    ],
)
def test_bad_generate_requests_get_422(client: TestClient, body: dict[str, Any], field: str) -> None:
    answer = client.post("/v1/models/bard/generate", json=body)
    assert answer.status_code == 422
    assert any(detail["loc"][-1] == field or field in detail["msg"] for detail in answer.json()["detail"])


def test_concurrent_streams_each_get_their_own_text(gpt_run: Path, serve_live) -> None:
    """Six seeded generations over three decoding rows: each equals the generator's text alone."""
    from modelforge.text.generate import load_generator

    services = load_services([f"bard={gpt_run}"])
    assert isinstance(services["bard"], GenerateService)
    bodies = [{"prompt": "ROMEO:"[: 2 + i % 4], "max_new_tokens": 10 + 7 * i, "seed": i} for i in range(6)]

    async def streams(url: str) -> list[str]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            answers = await asyncio.gather(*(http.post("/v1/models/bard/generate", json=b) for b in bodies))
            assert [r.status_code for r in answers] == [200] * 6, [r.text for r in answers]
            return [r.json()["text"] for r in answers]

    with serve_live(create_app(services, ServeSettings(max_streams=3))) as url:
        texts = asyncio.run(streams(url))
    generator = load_generator(gpt_run)
    expected = [generator.generate(b["prompt"], b["max_new_tokens"], 1.0, None, None, b["seed"]) for b in bodies]
    assert texts == expected and len(set(texts)) > 1


def test_an_abandoned_stream_gives_its_row_back(gpt_run: Path, serve_live) -> None:
    services = load_services([f"bard={gpt_run}"])
    app = create_app(services, ServeSettings(max_streams=1, max_new_tokens=100_000))
    with serve_live(app) as url:
        body = {"prompt": "ROMEO:", "max_new_tokens": 100_000, "stream": True}
        with httpx.stream("POST", f"{url}/v1/models/bard/generate", json=body, timeout=30) as response:
            assert next(line for line in response.iter_lines() if line.startswith("data: "))
        # The one row was that stream's; the next request gets it once the stream is dropped.
        answer = httpx.post(f"{url}/v1/models/bard/generate", json={"prompt": "RO", "max_new_tokens": 5}, timeout=30)
        assert answer.status_code == 200 and answer.json()["new_tokens"] == 5
        deadline = time.monotonic() + 10
        while app.state.serve.active_generations["bard"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.state.serve.active_generations["bard"] == 0


def test_the_onnx_engine_streams_the_generators_text(gpt_run: Path, serve_live, tmp_path: Path) -> None:
    """`serve --engine onnx`: four seeded streams over two rows, one past the 32-position context (the
    window slides), each equal to the eager generator's text; a run without model.onnx is refused."""
    import shutil

    from modelforge.export.recipe import export_run
    from modelforge.text.generate import load_generator

    run = tmp_path / "gpt"
    shutil.copytree(gpt_run, run)
    with pytest.raises(ModelforgeError, match=r"model\.onnx: not found; run `modelforge export"):
        load_services([f"bard={run}"], engine="onnx")
    export_run(run, "onnx")
    services = load_services([f"bard={run}"], engine="onnx")
    assert services["bard"].describe()["engine"].startswith("onnxruntime")
    bodies = [{"prompt": "ROMEO:"[: 2 + i], "max_new_tokens": 8 + 12 * i, "seed": i} for i in range(4)]
    bodies[0]["temperature"] = 0

    async def streams(url: str) -> list[str]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            answers = await asyncio.gather(*(http.post("/v1/models/bard/generate", json=b) for b in bodies))
            assert [r.status_code for r in answers] == [200] * 4, [r.text for r in answers]
            return [r.json()["text"] for r in answers]

    with serve_live(create_app(services, ServeSettings(max_streams=2))) as url:
        texts = asyncio.run(streams(url))
    generator = load_generator(run)
    expected = [
        generator.generate(b["prompt"], b["max_new_tokens"], b.get("temperature", 1.0), None, None, b["seed"])
        for b in bodies
    ]
    assert texts == expected and len(set(texts)) > 1
