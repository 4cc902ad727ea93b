"""Slices: per-group metrics equal the metrics of each filtered subset; gaps computed and flagged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelforge.evaluate.report import evaluate_rows, evaluation_rows
from modelforge.evaluate.slices import group_labels, largest_gaps, slice_metrics


def test_classification_slices_match_filtered_subsets(classifier_run: Any, cancer_csv: Path) -> None:
    frame = pd.read_csv(cancer_csv)  # `site` was dropped from training but is kept for slicing
    outputs = classifier_run.outputs(frame)
    truth = classifier_run.preprocessor.transform_target(frame)
    report = slice_metrics("site", frame["site"], truth, outputs, "classification", classifier_run.preprocessor.classes)
    assert sorted(g.value for g in report.groups) == ["east", "north", "south"]
    for group in report.groups:
        subset = classifier_run.evaluate(frame[frame["site"] == group.value])  # the run's own pipeline
        assert group.n == subset["n"]
        assert group.metrics["accuracy"] == pytest.approx(subset["accuracy"])
        assert group.metrics["f1"] == pytest.approx(subset["f1"])
        assert group.metrics["roc_auc"] == pytest.approx(subset["roc_auc"])
        assert group.metrics["true_positive_rate"] == pytest.approx(subset["per_class"]["malignant"]["recall"])
    accuracies = [g.metrics["accuracy"] for g in report.groups]
    gap = next(g for g in report.gaps if g.metric == "accuracy_gap")
    assert gap.value == pytest.approx(max(accuracies) - min(accuracies))


def test_regression_slices_match_filtered_subsets(regressor_run: Any, diabetes_csv: Path) -> None:
    frame = pd.read_csv(diabetes_csv)
    predicted = regressor_run.outputs(frame)
    report = slice_metrics("sex", frame["sex"], frame["target"].to_numpy(float), predicted, "regression")
    assert [g.value for g in report.groups] == ["1", "2"]
    for group in report.groups:
        subset = regressor_run.evaluate(frame[frame["sex"] == int(group.value)])
        assert group.metrics["rmse"] == pytest.approx(subset["rmse"])
        assert group.metrics["mae"] == pytest.approx(subset["mae"])
        assert group.metrics["r2"] == pytest.approx(subset["r2"])
    assert {g.metric for g in report.gaps} == {"rmse_gap", "mae_gap", "mean_prediction_gap"}


def test_report_rows_are_the_test_split_with_the_dropped_column(classifier_run: Any) -> None:
    frame, source = evaluation_rows(classifier_run, None, ["site"])
    assert source == "the run's test split" and "site" in frame.columns
    evaluated = evaluate_rows(classifier_run, frame, source)
    assert evaluated.metrics["accuracy"] == pytest.approx(classifier_run.metrics["accuracy"])  # same rows as eval.json


def test_gap_definitions_on_known_numbers() -> None:
    # group a: 4 rows, predicted positive 3 (rate .75), positives 2 found 2 (tpr 1); group b: rate .25, tpr .5
    groups = pd.Series(["a"] * 4 + ["b"] * 4)
    truth = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    predicted_positive = np.array([1, 1, 1, 0, 1, 0, 0, 0])
    probabilities = np.stack([1 - predicted_positive * 0.8 - 0.1, predicted_positive * 0.8 + 0.1], axis=1)
    report = slice_metrics("g", groups, truth, probabilities, "classification", ["no", "yes"], min_group=1)
    gaps = {g.metric: g for g in report.gaps}
    assert gaps["demographic_parity_difference"].value == pytest.approx(0.5)
    assert (gaps["demographic_parity_difference"].high, gaps["demographic_parity_difference"].low) == ("a", "b")
    assert gaps["equal_opportunity_difference"].value == pytest.approx(0.5)
    assert gaps["accuracy_gap"].value == pytest.approx(0.0)  # both groups: 3 of 4 right
    assert gaps["demographic_parity_difference"].flagged and not gaps["accuracy_gap"].flagged
    assert largest_gaps([report])[0].flagged


def test_small_groups_listed_but_left_out_of_gaps() -> None:
    groups = pd.Series(["a"] * 20 + ["b"] * 20 + ["tiny"] * 2)
    truth = np.r_[np.zeros(40, int), np.ones(2, int)]
    probabilities = np.tile([0.9, 0.1], (42, 1))
    report = slice_metrics("g", groups, truth, probabilities, "classification", [0, 1], min_group=10)
    assert [g.value for g in report.groups] == ["a", "b", "tiny"]
    assert all(gap.value == pytest.approx(0.0) for gap in report.gaps)  # "tiny" (accuracy 0) not compared


def test_numeric_columns_with_many_values_are_binned() -> None:
    values = pd.Series(np.arange(100, dtype=float))
    labels = group_labels(values)
    assert labels.nunique() == 4 and labels.value_counts().min() == 25
    assert group_labels(pd.Series([1.0, 2.0, None])).tolist() == ["1", "2", "(missing)"]
