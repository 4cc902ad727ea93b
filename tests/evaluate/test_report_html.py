"""`modelforge report`: self-contained HTML whose plots render in headless Chromium."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from insight_runs import modelforge_cli, screenshot
from PIL import Image

from modelforge.errors import DataError
from modelforge.evaluate.report import write_report

MATPLOTLIB_BLUE = (31, 119, 180)
MATPLOTLIB_ORANGE = (255, 127, 14)


def embedded_images(html: str) -> list[np.ndarray]:
    uris = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(uri))).convert("RGB")) for uri in uris]


def pixels_near(image: np.ndarray, color: tuple[int, int, int], tolerance: int = 30) -> int:
    distance = np.abs(image.astype(int) - np.array(color)).sum(axis=-1)
    return int((distance < tolerance).sum())


def drawn_plot_bands(shot: np.ndarray, band: int = 150) -> int:
    """Horizontal bands of the page holding a drawn plot: many distinct colours, not just text on white."""
    count = 0
    for top in range(0, shot.shape[0] - band + 1, band):
        region = shot[top : top + band].reshape(-1, 3)
        colours = len(np.unique(region // 16, axis=0))
        inked = (region.sum(axis=1) < 600).mean()
        count += colours > 40 and inked > 0.01
    return count


def one_error_line(stderr: str) -> bool:
    return "Traceback" not in stderr and sum(line.startswith("error: ") for line in stderr.splitlines()) == 1


def assert_self_contained(html: str) -> None:
    assert "<script" not in html.lower()
    assert not re.search(r"(src|href)=['\"]https?:", html), "the report links to the network"


def test_classifier_report_renders_with_plots(classifier_run: Any, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = modelforge_cli("report", str(classifier_run.path), "--slice-by", "site", "--out", str(out))
    assert result.returncode == 0, result.stderr
    html = out.read_text()
    assert_self_contained(html)
    for heading in (
        "Learning curves",
        "Confusion matrix",
        "ROC and precision-recall",
        "Calibration",
        "Most confident mistakes",
        "Explanations",
        "Slices",
        "Model card",
    ):
        assert heading in html, heading
    assert "demographic_parity_difference" in html and "equal_opportunity_difference" in html
    assert "Teaching example for modelforge reports" in html  # card.intended_use from the config
    assert classifier_run.config.data.train in html  # data file with its hash
    images = embedded_images(html)
    assert len(images) >= 6
    assert all(img.std() > 5 for img in images), "an embedded plot is blank"

    shot = np.asarray(Image.open(screenshot(out, tmp_path / "classifier.png")).convert("RGB"))
    assert pixels_near(shot, MATPLOTLIB_BLUE) > 2000, "no plotted lines/bars visible in the browser"
    assert pixels_near(shot, MATPLOTLIB_ORANGE) > 100, "the validation loss curve is not visible"
    assert drawn_plot_bands(shot) >= 8


def test_regressor_report_renders_with_plots(regressor_run: Any, tmp_path: Path) -> None:
    out = write_report(regressor_run.path, tmp_path / "report.html", slice_by=["sex"])
    html = out.read_text()
    assert_self_contained(html)
    assert "Predicted vs actual, residuals" in html and "Largest errors" in html
    assert "rmse_gap" in html
    assert "Confusion matrix" not in html
    images = embedded_images(html)
    assert len(images) >= 4 and all(img.std() > 5 for img in images)
    shot = np.asarray(Image.open(screenshot(out, tmp_path / "regressor.png")).convert("RGB"))
    assert pixels_near(shot, MATPLOTLIB_BLUE) > 1500, "scatter points not visible in the browser"
    assert drawn_plot_bands(shot) >= 6


def test_language_model_report_renders_with_samples(language_model_run: Path, tmp_path: Path) -> None:
    out = write_report(language_model_run, tmp_path / "report.html", prompts=["ROMEO:"])
    html = out.read_text()
    assert_self_contained(html)
    assert "Loss and perplexity" in html and "perplexity" in html and "Sample generations" in html
    sample = re.search(r"<pre class='sample'>ROMEO:<b>(.*?)</b></pre>", html, re.S)
    assert sample is not None and len(sample.group(1)) > 50  # 120 new characters, HTML-escaped
    assert "Model card" in html
    images = embedded_images(html)
    assert len(images) >= 1 and all(img.std() > 5 for img in images)
    shot = np.asarray(Image.open(screenshot(out, tmp_path / "gpt.png", height=2000)).convert("RGB"))
    assert pixels_near(shot, MATPLOTLIB_BLUE) > 300 and pixels_near(shot, MATPLOTLIB_ORANGE) > 100
    assert drawn_plot_bands(shot) >= 1


def test_report_bad_inputs_exit_2(classifier_run: Any, tmp_path: Path) -> None:
    missing = modelforge_cli("report", str(tmp_path / "no-such-run"))
    assert missing.returncode == 2
    assert one_error_line(missing.stderr) and "run directory not found" in missing.stderr
    with pytest.raises(DataError, match=r"--slice-by: column 'sitee' not in the data \(did you mean site\?\)"):
        write_report(classifier_run.path, tmp_path / "r.html", slice_by=["sitee"])


def test_card_section_is_strict() -> None:
    from modelforge.config import load_config
    from modelforge.errors import ConfigError

    with pytest.raises(ConfigError, match=r"card.intended_us: unknown key \(did you mean intended_use\?\)"):
        load_config({"data": {"train": "x.csv", "target": "y"}, "card": {"intended_us": "demo"}})
