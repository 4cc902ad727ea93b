"""The playground page in headless Chromium (Debian's `chromium`, driven by Playwright).

One record for the digits CNN, a bad record (the error names row and field), a prompt whose
tokens stream into the page, a user's recommendations and a grid of sampled images; screenshots
of the answer must show it (dark text, or dark digits, on white).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelforge.run import load_run
from modelforge.serve.app import ServeSettings, create_app
from modelforge.serve.services import load_services

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def page(digits_run: Path, gpt_run: Path, recommend_run: Any, vae_run: Any, serve_live) -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra)")
    runs = [f"digits={digits_run}", f"bard={gpt_run}", f"films={recommend_run.path}", f"faces={vae_run.path}"]
    services = load_services(runs)
    app = create_app(services, ServeSettings(max_new_tokens=64))
    with serve_live(app) as url, playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            tab = browser.new_page(viewport={"width": 1000, "height": 900})
            tab.goto(url)
            tab.wait_for_selector("#model option", state="attached")
            yield tab
        finally:
            browser.close()


def ink(screenshot: bytes) -> float:
    """The share of clearly dark pixels in a PNG: text drawn on the white answer panel."""
    import io

    from PIL import Image

    gray = np.asarray(Image.open(io.BytesIO(screenshot)).convert("L"))
    return float((gray < 100).mean())


def test_one_record_gets_its_answer_on_the_page(page: Any, digits_run: Path, digits_pixels) -> None:
    expected = load_run(digits_run).predict(pd.DataFrame({"x": [digits_pixels[7]]}))["prediction"].iloc[0]
    page.select_option("#model", "digits")
    page.fill("#feature-x", json.dumps(digits_pixels[7].tolist()))
    page.click("#send")
    page.wait_for_selector("#prediction")
    assert page.inner_text("#prediction") == str(expected)
    assert len(page.query_selector_all("#answer .bar")) == 5  # the five likeliest classes
    assert ink(page.locator("#answer").screenshot()) > 0.01


def test_a_bad_record_shows_the_422_naming_row_and_field(page: Any) -> None:
    page.select_option("#model", "digits")
    page.fill("#feature-x", '"/etc/passwd"')
    page.click("#send")
    page.wait_for_selector("#error")
    assert page.inner_text("#error").startswith("422: body.records.0.x: expected pixels")


def test_a_prompt_streams_tokens_into_the_page(page: Any) -> None:
    page.select_option("#model", "bard")
    page.fill("#prompt", "ROMEO:")
    page.fill("#max_new_tokens", "40")
    page.click("#send")
    page.wait_for_selector("#generated[data-done='true']")
    text = page.inner_text("#generated")
    assert text.startswith("ROMEO:") and len(text) == len("ROMEO:") + 40
    assert ink(page.locator("#answer").screenshot()) > 0.005


def test_a_user_gets_the_recommended_items(page: Any, recommend_run: Any) -> None:
    expected = recommend_run.predict(pd.DataFrame({"user": ["u3"]}))["item"].tolist()
    page.select_option("#model", "films")
    page.fill("#feature-user", "u3")
    page.click("#send")
    page.wait_for_selector("#answer .item")
    shown = [row.inner_text().split()[0] for row in page.query_selector_all("#answer .item")]
    assert shown == expected and len(shown) == 5


def test_sampled_images_appear_as_a_grid(page: Any) -> None:
    page.select_option("#model", "faces")
    page.fill("#n", "20")
    page.click("#send")
    page.wait_for_selector("#grid")
    page.wait_for_function("document.getElementById('grid').complete")
    width, height = page.evaluate(
        "[document.getElementById('grid').naturalWidth, document.getElementById('grid').naturalHeight]"
    )
    assert (width, height) == (4 * (10 * 9 + 1), 4 * (2 * 9 + 1))  # 10 classes a row, 8×8 digits, 4× zoom
    assert ink(page.locator("#answer").screenshot()) > 0.005
