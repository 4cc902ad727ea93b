"""A bounded load test on loopback: many concurrent clients, a fixed number of requests, a time cap."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from modelforge.run import load_run
from modelforge.serve.app import ServeSettings, create_app
from modelforge.serve.services import load_services

CLIENTS = 32
REQUESTS_PER_CLIENT = 6
TIME_CAP_S = 60


def test_every_request_answered_correctly_under_concurrent_load(digits_run: Path, digits_pixels, serve_live) -> None:
    rows = list(range(0, 1500, 25))  # 60 different digits
    expected = load_run(digits_run).predict(pd.DataFrame({"x": [digits_pixels[i] for i in rows]}))["prediction"]
    services = load_services([f"digits={digits_run}"])
    app = create_app(services, ServeSettings(max_batch_size=32, max_wait_ms=5, max_queue=4096))

    async def one_client(http: httpx.AsyncClient, client: int) -> list[tuple[int, int, Any]]:
        answers = []
        for k in range(REQUESTS_PER_CLIENT):
            index = (client * REQUESTS_PER_CLIENT + k) % len(rows)
            size = 1 + (client + k) % 3  # one to three records per request
            picked = [(index + j) % len(rows) for j in range(size)]
            body = {"records": [{"x": digits_pixels[rows[p]].tolist()} for p in picked]}
            response = await http.post("/v1/models/digits/predict", json=body)
            labels = [p["label"] for p in response.json()["predictions"]] if response.status_code == 200 else None
            answers.append((response.status_code, picked, labels))
        return answers

    async def load(url: str) -> list[tuple[int, Any, Any]]:
        limits = httpx.Limits(max_connections=CLIENTS)
        async with httpx.AsyncClient(base_url=url, timeout=TIME_CAP_S, limits=limits) as http:
            clients = [one_client(http, c) for c in range(CLIENTS)]
            results = await asyncio.wait_for(asyncio.gather(*clients), TIME_CAP_S)
        return [answer for result in results for answer in result]

    with serve_live(app) as url:
        answers = asyncio.run(load(url))
        metrics = httpx.get(f"{url}/metrics").text
    assert len(answers) == CLIENTS * REQUESTS_PER_CLIENT  # none lost
    assert [status for status, _, _ in answers] == [200] * len(answers)
    for _, picked, labels in answers:
        assert labels == [expected.iloc[p] for p in picked]
    served = f'modelforge_requests_total{{route="/v1/models/{{name}}/predict",status="200"}} {len(answers)}'
    assert served in metrics.splitlines()
    batches = float(metrics.split('modelforge_batch_size_rows_count{model="digits"} ')[1].split()[0])
    assert batches < len(answers)  # the load really was batched
