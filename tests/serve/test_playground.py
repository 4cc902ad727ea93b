"""The playground page in headless Chromium (Debian's `chromium`, driven by Playwright).

A 30-column table model (breast cancer) shows its fields prefilled with the typical row and
compact enough to see at once, takes a pasted CSV row, and answers with a probability bar
chart; a regression model answers with its value; an image file dropped on the digits model is
decoded in the browser to the model's 8×8 grayscale pixels (inverted when drawn dark on white);
a bad record names its row and field; a prompt streams; a user gets recommendations; a sampler
draws a grid. The page runs under the server's Content-Security-Policy and must raise no
JavaScript error. Screenshots land in each test's tmp dir; they must be real, non-blank PNGs.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import modelforge
from modelforge.run import load_run
from modelforge.serve.app import ServeSettings, create_app
from modelforge.serve.services import load_services

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CANCER = Path(__file__).resolve().parents[2] / "examples" / "data" / "breast_cancer.csv"
# The page must work under the server's Content-Security-Policy; where a server sends none, under this one.
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; connect-src 'self'"
)
VIEWPORT = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def cancer_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLP on the 30 numeric columns of the breast-cancer table (569 rows)."""
    config = {
        "task": "classification",
        "seed": 0,
        "data": {"train": str(CANCER), "target": "diagnosis"},
        "model": {"type": "mlp"},
        "train": {"epochs": 2, "batch_size": 64, "threads": 1},
    }
    out = tmp_path_factory.mktemp("cancer") / "run"
    modelforge.train(config, out)
    return out


@pytest.fixture(scope="module")
def browser_errors() -> list[str]:
    return []


@pytest.fixture(scope="module")
def page(
    digits_run: Path,
    cancer_run: Path,
    diabetes_run: Path,
    gpt_run: Path,
    recommend_run: Any,
    vae_run: Any,
    serve_live: Any,
    browser_errors: list[str],
) -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra)")
    runs = [
        f"digits={digits_run}",
        f"cancer={cancer_run}",
        f"diabetes={diabetes_run}",
        f"bard={gpt_run}",
        f"films={recommend_run.path}",
        f"faces={vae_run.path}",
    ]
    app = create_app(load_services(runs), ServeSettings(max_new_tokens=64))
    with serve_live(app) as url, playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            tab = browser.new_page(viewport=VIEWPORT)
            tab.on("pageerror", lambda error: browser_errors.append(f"page error: {error}"))
            tab.on("console", lambda message: browser_errors.extend(console_errors(message)))
            tab.route(f"{url}/", with_policy)
            tab.goto(url)
            tab.wait_for_selector("#model option", state="attached")
            yield tab
        finally:
            browser.close()


def console_errors(message: Any) -> list[str]:
    """A console error (a CSP refusal, a failed script), but not Chromium's line for a 4xx answer the page shows."""
    if message.type != "error" or message.text.startswith("Failed to load resource: the server responded"):
        return []
    return [message.text]


def with_policy(route: Any) -> None:
    """Serve the page with the server's own Content-Security-Policy, or `CSP` if it sends none."""
    response = route.fetch()
    headers = dict(response.headers)
    headers.setdefault("content-security-policy", CSP)
    route.fulfill(response=response, headers=headers)


@pytest.fixture(autouse=True)
def no_browser_errors(browser_errors: list[str]) -> Iterator[None]:
    """Every test ends without a JavaScript error or CSP violation in the page's console."""
    browser_errors.clear()
    yield
    assert browser_errors == []


def ink(screenshot: bytes) -> float:
    """The share of clearly dark pixels in a PNG: text drawn on the white answer panel."""
    from PIL import Image

    gray = np.asarray(Image.open(io.BytesIO(screenshot)).convert("L"))
    return float((gray < 100).mean())


def saved_screenshot(page: Any, path: Path) -> None:
    """A screenshot of the whole page in `path`: a real PNG of the page size, with text, fields and colour."""
    from PIL import Image

    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB")).astype(np.uint32)
    assert pixels.shape[1] == VIEWPORT["width"] and pixels.shape[0] >= 400
    colours = (pixels[..., 0] << 16) | (pixels[..., 1] << 8) | pixels[..., 2]
    assert len(np.unique(colours)) > 50  # not a blank or one-colour page
    assert 0.002 < ink(path.read_bytes()) < 0.5


def fields(page: Any) -> list[dict[str, Any]]:
    """The table fields as the page lays them out: name, value and position."""
    return page.eval_on_selector_all(
        ".fields input",
        "els => els.map(e => ({name: e.id.slice('feature-'.length), value: e.value,"
        " x: e.getBoundingClientRect().x, bottom: e.getBoundingClientRect().bottom}))",
    )


def bars(page: Any) -> dict[str, float]:
    return dict(
        page.eval_on_selector_all(
            "#answer .bar", "els => els.map(e => [e.querySelector('.name').textContent, Number(e.dataset.probability)])"
        )
    )


def test_the_typical_row_comes_from_the_fitted_preprocessing_and_older_runs_still_give_one() -> None:
    from modelforge.data.features import CategoryEncoder, ImageEncoder, NumericEncoder, TextEncoder, encoder_from_json
    from modelforge.serve.services import describe_feature

    age = NumericEncoder("age", impute="zero").fit(pd.Series([30.0, 50.0, None, 40.0, 90.0]))
    city = CategoryEncoder("city").fit(pd.Series(["Oslo", "Bergen", "Oslo", None, "Bergen", "Oslo"]))
    note = TextEncoder("note").fit(pd.Series(["fine", "ok"]))
    assert describe_feature(age, hashed=False) == {"name": "age", "kind": "numeric", "example": 45.0}
    assert describe_feature(city, hashed=False)["example"] == "Oslo"  # the most frequent, not the first
    assert describe_feature(city, hashed=True) == {"name": "city", "kind": "category"}  # digests are no example
    assert describe_feature(note, hashed=False) == {"name": "note", "kind": "text"}
    pictures = ImageEncoder("x").fit(pd.Series([np.full((8, 6), 4.0), np.arange(48.0).reshape(8, 6) / 3]))
    described = describe_feature(pictures, hashed=False)  # what the page needs to scale a photo's pixels
    assert described["shape"] == [1, 8, 6] and described["pixel_range"] == pytest.approx([0, 47 / 3])
    # Runs saved before the typical values were kept: the imputed value and the first known category.
    older = {k: v for k, v in age.to_json().items() if k != "median_"}
    assert encoder_from_json("numeric", "age", json.loads(json.dumps(older))).example() == 0.0
    older = {k: v for k, v in city.to_json().items() if k != "most_frequent_"}
    assert encoder_from_json("category", "city", json.loads(json.dumps(older))).example() == "Bergen"
    older = {k: v for k, v in pictures.to_json().items() if k != "pixel_range_"}
    assert encoder_from_json("image", "x", json.loads(json.dumps(older))).pixel_range() == [0.0, 1.0]


def test_a_wide_table_is_prefilled_compactly_and_answered_with_a_bar_chart(
    page: Any, cancer_run: Path, tmp_path: Path
) -> None:
    run = load_run(cancer_run)
    medians = {e.name: e.median_ for e in run.preprocessor.encoders}
    page.select_option("#model", "cancer")
    shown = fields(page)
    assert [f["name"] for f in shown] == list(medians) and len(shown) == 30
    assert {f["name"]: float(f["value"]) for f in shown} == pytest.approx(medians)
    # Compact: four or more fields a row, and all of them and the button visible without scrolling.
    assert len({round(f["x"]) for f in shown}) >= 4
    assert page.locator("#send").bounding_box()["y"] + 40 < VIEWPORT["height"]

    page.click("#send")
    page.wait_for_selector("#answer .bar")
    probabilities = bars(page)
    assert set(probabilities) == {str(c) for c in run.preprocessor.classes}
    assert sum(probabilities.values()) == pytest.approx(1, abs=1e-4)
    expected = run.predict(pd.DataFrame([medians]))["prediction"].iloc[0]
    assert page.inner_text("#prediction") == str(expected) == max(probabilities, key=probabilities.__getitem__)
    top, track = page.locator("#answer .bar.top .fill").bounding_box(), page.locator("#answer .bar.top .track")
    assert top["width"] / track.bounding_box()["width"] == pytest.approx(max(probabilities.values()), abs=0.02)
    saved_screenshot(page, tmp_path / "table.png")


def test_a_pasted_csv_row_fills_the_fields(page: Any, cancer_run: Path, tmp_path: Path) -> None:
    header, first, second = CANCER.read_text().splitlines()[:3]
    columns = header.split(",")[:-1]  # the last column is the target, which the page ignores
    page.select_option("#model", "cancer")

    page.fill("#paste", f"{header}\n{first}")
    page.click("#fill")
    assert [f["value"] for f in fields(page)] == first.split(",")[:-1]
    assert page.inner_text("#paste-status") == "filled 30 fields; ignored diagnosis"

    values = second.split(",")[:-1]
    page.fill("#paste", "\t".join(values))  # a row copied from a spreadsheet, in column order
    page.click("#fill")
    assert [f["value"] for f in fields(page)] == values and page.inner_text("#paste-status") == "filled 30 fields"

    page.fill("#paste", second)  # 31 values: the target too, without a header to tell which is which
    page.click("#fill")
    assert page.get_attribute("#paste-status", "class") == "problem"
    assert page.inner_text("#paste-status").startswith("expected 30 values in column order (mean_radius, ")
    assert [f["value"] for f in fields(page)] == values  # the fields are left as they were

    page.click("#send")
    page.wait_for_selector("#answer .bar")
    row = pd.DataFrame([dict(zip(columns, map(float, values), strict=True))])
    assert page.inner_text("#prediction") == str(run_prediction(cancer_run, row))
    saved_screenshot(page, tmp_path / "pasted.png")


def run_prediction(run_dir: Path, frame: pd.DataFrame) -> Any:
    return load_run(run_dir).predict(frame)["prediction"].iloc[0]


def test_a_regression_model_answers_with_its_value(page: Any, diabetes_run: Path) -> None:
    run = load_run(diabetes_run)
    medians = {e.name: e.median_ for e in run.preprocessor.encoders}
    page.select_option("#model", "diabetes")
    assert {f["name"]: float(f["value"]) for f in fields(page)} == pytest.approx(medians)
    page.press("#feature-bmi", "Enter")  # Enter in a field predicts
    page.wait_for_selector("#prediction")
    expected = float(run.predict(pd.DataFrame([medians]))["prediction"].iloc[0])
    assert float(page.inner_text("#prediction")) == pytest.approx(expected, rel=1e-5)
    assert page.query_selector_all("#answer .bar") == []


def digit_png(pixels: np.ndarray, path: Path, *, dark_on_light: bool = False) -> Path:
    """An 8×8 digit drawn as a 64×64 PNG, light ink on black as in training (or dark ink on white paper)."""
    from PIL import Image

    gray = np.kron(pixels, np.ones((8, 8)))
    gray = 1 - gray if dark_on_light else gray
    Image.fromarray(np.round(gray * 255).astype(np.uint8), mode="L").save(path)
    return path


def drop_file(page: Any, selector: str, path: Path) -> None:
    """Drop a PNG file on an element, as dragging it from the desktop does."""
    transfer = page.evaluate_handle(
        "([bytes, name]) => { const t = new DataTransfer();"
        " t.items.add(new File([new Uint8Array(bytes)], name, {type: 'image/png'})); return t; }",
        [list(path.read_bytes()), path.name],
    )
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def paste_file(page: Any, path: Path) -> None:
    """Paste a PNG into the page, as Ctrl+V after copying an image does."""
    page.evaluate(
        "([bytes, name]) => { const t = new DataTransfer();"
        " t.items.add(new File([new Uint8Array(bytes)], name, {type: 'image/png'}));"
        " document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: t})); }",
        [list(path.read_bytes()), path.name],
    )


def sent_pixels(page: Any) -> np.ndarray:
    return np.asarray(json.loads(page.eval_on_selector("#feature-x", "e => e.value")))


def test_an_image_file_is_decoded_to_the_models_pixels_and_answered(
    page: Any, digits_run: Path, digits_pixels: np.ndarray, tmp_path: Path
) -> None:
    digit = digits_pixels[7]
    page.select_option("#model", "digits")
    page.set_input_files("#file-x", str(digit_png(digit, tmp_path / "seven.png")))
    page.wait_for_selector("#answer .bar")  # a loaded image is answered at once
    pixels = sent_pixels(page)
    assert pixels.shape == (8, 8) and np.abs(pixels - digit).max() < 0.02
    assert not page.is_checked("#invert-x")
    probabilities = bars(page)
    assert len(probabilities) == 10 and sum(probabilities.values()) == pytest.approx(1, abs=1e-4)
    label = page.inner_text("#prediction")
    assert label == str(run_prediction(digits_run, pd.DataFrame({"x": [pixels.astype(np.float32)]})))
    saved_screenshot(page, tmp_path / "digit.png")

    drop_file(page, "#drop-x", digit_png(digit, tmp_path / "paper.png", dark_on_light=True))
    page.wait_for_selector("#image-info-x:text('paper.png')")
    page.wait_for_selector("#answer:not([data-pending]) .bar")
    assert page.is_checked("#invert-x")  # dark ink on white paper is inverted to the training's look
    assert np.abs(sent_pixels(page) - digit).max() < 0.02 and page.inner_text("#prediction") == label
    assert "inverted" in page.inner_text("#image-info-x")
    saved_screenshot(page, tmp_path / "dropped.png")

    paste_file(page, digit_png(digit, tmp_path / "clipboard.png"))  # Ctrl+V of a copied image
    page.wait_for_selector("#image-info-x:text('clipboard.png')")
    page.wait_for_selector("#answer:not([data-pending]) .bar")
    assert not page.is_checked("#invert-x") and np.abs(sent_pixels(page) - digit).max() < 0.02


def test_pixels_pasted_as_json_get_their_answer(page: Any, digits_run: Path, digits_pixels: np.ndarray) -> None:
    expected = run_prediction(digits_run, pd.DataFrame({"x": [digits_pixels[7]]}))
    page.select_option("#model", "digits")
    page.click("#form details.raw summary")
    page.fill("#feature-x", json.dumps(digits_pixels[7].tolist()))
    page.click("#send")
    page.wait_for_selector("#prediction")
    assert page.inner_text("#prediction") == str(expected)
    assert len(page.query_selector_all("#answer .bar")) == 10  # every class: ten fit in the chart
    assert ink(page.locator("#answer").screenshot()) > 0.01


def test_many_classes_show_the_likeliest_and_sum_up_the_rest(page: Any) -> None:
    probabilities = {f"class {k}": (k + 1) / 210 for k in range(20)}  # 1/210 … 20/210, summing to 1
    rows, rest = page.evaluate(
        "p => { const bars = probabilityBars(p); const names = bars.querySelectorAll('.bar .name');"
        " return [[...names].map(e => e.textContent), bars.querySelector('.more').textContent]; }",
        probabilities,
    )
    assert rows == [f"class {k}" for k in range(19, 9, -1)]  # the ten likeliest, best first
    assert rest == "and 10 more classes, 26.2% together"  # (1 + … + 10) / 210


def test_a_bad_record_shows_the_422_naming_row_and_field(page: Any) -> None:
    page.select_option("#model", "digits")
    page.click("#form details.raw summary")
    page.fill("#feature-x", '"/etc/passwd"')
    page.click("#send")
    page.wait_for_selector("#error")
    assert page.inner_text("#error").startswith("422: body.records.0.x: expected pixels")
    assert "invalid" in page.get_attribute("#feature-x", "class")


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
    page.wait_for_function("() => document.getElementById('grid').complete")  # a function: no eval under the CSP
    width, height = page.evaluate(
        "[document.getElementById('grid').naturalWidth, document.getElementById('grid').naturalHeight]"
    )
    assert (width, height) == (4 * (10 * 9 + 1), 4 * (2 * 9 + 1))  # 10 classes a row, 8×8 digits, 4× zoom
    assert ink(page.locator("#answer").screenshot()) > 0.005
