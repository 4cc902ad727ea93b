"""Temperature and isotonic calibration lower the expected calibration error; isotonic matches scikit-learn's."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression

from modelforge.decision import (
    Decision,
    expected_calibration_error,
    fit_decision,
    fit_isotonic,
    fit_temperature,
    scale_temperature,
)


def overconfident(rows: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two-class probabilities whose logits are 3× too large (the outcome follows the true ones)."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(-2.0, 1.5, rows)
    target = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    positive = 1 / (1 + np.exp(-3 * logit))
    return target, np.stack([1 - positive, positive], axis=1)


def test_temperature_recovers_the_scale_and_lowers_ece() -> None:
    target, probabilities = overconfident()
    temperature = fit_temperature(target, probabilities)
    assert temperature == pytest.approx(3.0, rel=0.1)
    before = expected_calibration_error(target, probabilities[:, 1])
    after = expected_calibration_error(target, scale_temperature(probabilities, temperature)[:, 1])
    assert before > 0.05 and after < 0.02


def test_isotonic_breakpoints_reproduce_scikit_learn() -> None:
    target, probabilities = overconfident(rows=3000)
    score = np.round(probabilities[:, 1], 4)  # ties pooled as scikit-learn pools them
    x, y = fit_isotonic(target, score)
    reference = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(score, target)
    probe = np.linspace(-0.1, 1.1, 500)
    np.testing.assert_allclose(np.interp(probe, x, y), reference.predict(probe), atol=1e-9)


@pytest.mark.parametrize("method", ["temperature", "isotonic"])
def test_fitted_decision_saves_json_and_calibrates_unseen_rows(method: str) -> None:
    target, probabilities = overconfident(seed=1)
    decision = fit_decision(target, probabilities, ["no", "yes"], {"optimize": "f1"}, method)
    assert decision.validation["ece_after"] < decision.validation["ece_before"]
    reloaded = Decision.from_json(decision.to_json(), ["no", "yes"])
    unseen_target, unseen = overconfident(seed=2)
    calibrated = reloaded.calibrated(unseen)
    np.testing.assert_allclose(calibrated.sum(axis=1), 1.0)
    assert expected_calibration_error(unseen_target, calibrated[:, 1]) < 0.02
    assert set(decision.to_json()) >= {"threshold", "positive", "positive_index", "calibration", "rule"}


def test_temperature_calibrates_many_classes_without_a_threshold() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(20_000, 4)) * 1.5
    true = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    target = np.array([rng.choice(4, p=p) for p in true])
    overconfident = np.exp(2.5 * logits) / np.exp(2.5 * logits).sum(axis=1, keepdims=True)
    decision = fit_decision(target, overconfident, ["a", "b", "c", "d"], None, "temperature")
    assert decision.threshold is None and decision.positive is None
    assert decision.calibration["temperature"] == pytest.approx(2.5, rel=0.1)
    assert decision.validation["ece_before"] > 0.05 and decision.validation["ece_after"] < 0.02
    np.testing.assert_array_equal(decision.choose(decision.calibrated(overconfident)), overconfident.argmax(axis=1))
