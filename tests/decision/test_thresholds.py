"""Threshold tuning per objective, and the curve metrics against scikit-learn's, on small skewed sets."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, precision_recall_curve

from modelforge.decision import (
    DecisionError,
    average_precision,
    brier_score,
    expected_calibration_error,
    threshold_curve,
    tune_threshold,
)


def skewed_scores(rows: int = 2000, share: float = 0.06, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes with `share` positives and a noisy score that ranks them mostly first."""
    rng = np.random.default_rng(seed)
    outcome = rng.random(rows) < share
    score = 1 / (1 + np.exp(-(2.5 * outcome - 3 + rng.normal(size=rows))))
    return outcome, np.round(score, 3)  # rounded: ties must count as one threshold


def test_curve_metrics_match_scikit_learn() -> None:
    outcome, score = skewed_scores()
    assert average_precision(outcome, score) == pytest.approx(average_precision_score(outcome, score), abs=1e-12)
    assert brier_score(outcome, score) == pytest.approx(brier_score_loss(outcome, score), abs=1e-12)
    precision, recall, thresholds = precision_recall_curve(outcome, score)
    curve = threshold_curve(outcome, score)
    ours = {
        float(t): (p, r) for t, p, r in zip(curve.thresholds[1:], curve.precision[1:], curve.recall[1:], strict=True)
    }
    for t, p, r in zip(thresholds, precision[:-1], recall[:-1], strict=True):
        assert ours[float(t)] == pytest.approx((p, r), abs=1e-12)


def flagged_figures(outcome: np.ndarray, score: np.ndarray, threshold: float) -> tuple[float, float, float]:
    flagged = score >= threshold
    hits = (flagged & outcome).sum()
    return hits / max(flagged.sum(), 1), hits / outcome.sum(), flagged.mean()


def test_each_objective_meets_its_target_and_is_the_best_that_does() -> None:
    outcome, score = skewed_scores()
    candidates = np.unique(score)
    table = np.array([flagged_figures(outcome, score, t) for t in candidates])  # precision, recall, flag rate

    threshold, figures = tune_threshold(outcome, score, {"max_flag_rate": 0.1})
    precision, recall, flag_rate = flagged_figures(outcome, score, threshold)
    assert flag_rate <= 0.1 and recall == pytest.approx(table[table[:, 2] <= 0.1, 1].max())
    assert figures["flag_rate"] == pytest.approx(flag_rate) and figures["recall"] == pytest.approx(recall)

    threshold, _ = tune_threshold(outcome, score, {"recall_at_precision": 0.6})
    precision, recall, _ = flagged_figures(outcome, score, threshold)
    assert precision >= 0.6 and recall == pytest.approx(table[table[:, 0] >= 0.6, 1].max())

    threshold, _ = tune_threshold(outcome, score, {"precision_at_recall": 0.8})
    precision, recall, _ = flagged_figures(outcome, score, threshold)
    assert recall >= 0.8 and precision == pytest.approx(table[table[:, 1] >= 0.8, 0].max())

    threshold, figures = tune_threshold(outcome, score, {"optimize": "f1"})
    f1 = 2 * table[:, 0] * table[:, 1] / np.maximum(table[:, 0] + table[:, 1], 1e-12)
    assert figures["f1"] == pytest.approx(f1.max())


def test_cost_objective_minimises_the_expected_cost_and_follows_the_costs() -> None:
    outcome, score = skewed_scores()

    def cost(threshold: float, fp: float, fn: float) -> float:
        flagged = score >= threshold
        return (fp * (flagged & ~outcome).sum() + fn * (~flagged & outcome).sum()) / len(score)

    cheap_misses, _ = tune_threshold(outcome, score, {"cost": {"false_positive": 1, "false_negative": 1}})
    dear_misses, figures = tune_threshold(outcome, score, {"cost": {"false_positive": 1, "false_negative": 20}})
    assert dear_misses < cheap_misses  # missing a positive costs more: flag more
    best = min(cost(t, 1, 20) for t in [*np.unique(score), 2.0])
    assert figures["expected_cost"] == pytest.approx(best) == pytest.approx(cost(dear_misses, 1, 20))


def test_an_unreachable_target_says_the_best_reachable_value() -> None:
    outcome, score = skewed_scores()
    with pytest.raises(DecisionError, match=r"precision 0.999 is not reached .*best reachable: 0\.\d+"):
        tune_threshold(outcome, np.full(len(score), 0.5), {"recall_at_precision": 0.999})
    with pytest.raises(DecisionError, match=r"max_flag_rate: 0.01 cannot be met .*1\.0000"):
        tune_threshold(outcome, np.full(len(score), 0.3), {"max_flag_rate": 0.01})
    with pytest.raises(DecisionError, match="0 positive rows"):
        tune_threshold(np.zeros(50, bool), np.linspace(0, 1, 50), {"optimize": "f1"})


def test_ece_is_zero_for_a_calibrated_score_and_large_for_an_overconfident_one() -> None:
    rng = np.random.default_rng(1)
    probability = rng.random(200_000)
    outcome = rng.random(len(probability)) < probability
    assert expected_calibration_error(outcome, probability) < 0.01
    assert expected_calibration_error(outcome, np.where(probability > 0.5, 0.99, 0.01)) > 0.2
