import numpy as np
import pytest

from modelforge.evaluate.metrics import binary_roc_auc, classification_metrics, regression_metrics


def test_roc_auc_matches_pair_counting_with_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    score = np.round(rng.random(200) + 0.3 * y, 1)  # many ties
    pos, neg = score[y == 1], score[y == 0]
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert binary_roc_auc(y, score) == pytest.approx(pairs)


def test_classification_metrics_by_hand() -> None:
    y = np.array([0, 0, 1, 1, 2])
    probabilities = np.eye(3)[[0, 1, 1, 1, 2]] * 0.9 + 0.1 / 3
    metrics = classification_metrics(y, probabilities, ["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(0.8)
    assert metrics["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [0, 0, 1]]
    assert metrics["per_class"]["a"]["recall"] == pytest.approx(0.5)
    assert metrics["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert metrics["f1"] == pytest.approx(np.mean([2 / 3, 0.8, 1.0]))


def test_regression_metrics() -> None:
    metrics = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))
    assert metrics["mse"] == pytest.approx(1 / 3) and metrics["mae"] == pytest.approx(1 / 3)
    assert metrics["r2"] == pytest.approx(1 - (1 / 3) / (2 / 3))
