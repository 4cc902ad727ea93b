"""`modelforge report`: one self-contained HTML file about a run, readable offline.

Sections, in order: summary, learning curves, the task's diagnostics (classification:
confusion matrix, per-class scores, ROC and PR curves, reliability, most confident mistakes;
regression: predicted vs actual, residuals, largest errors; language models: loss curve,
perplexity, sample generations), explanations, slices, and a model card. Every figure is a
PNG embedded as a data URI; there are no scripts and no external links.

The rows evaluated are `--data` if given, else the run's own test split, re-created from the
config (same file, same seed), so the figures match `eval.json`.
"""

from __future__ import annotations

import html
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from modelforge.errors import DataError, ModelforgeError, RunError
from modelforge.tasks import TASKS, predicts_labels, predicts_values

MAX_MISTAKES = 10
IMPORTANCE_ROWS = 200


@dataclass
class Section:
    anchor: str
    title: str
    body: str


@dataclass
class Evaluated:
    """The rows a report looks at, with truth and model outputs aligned."""

    frame: pd.DataFrame
    source: str
    y_true: np.ndarray  # class indices, or values in target units
    outputs: np.ndarray  # N×K probabilities (calibrated by the run's decision), or predicted values
    metrics: dict[str, Any] = field(default_factory=dict)
    uncalibrated: np.ndarray | None = None  # the model's own probabilities where a calibration changed them


# ----------------------------------------------------------------------------- html pieces
def esc(value: Any) -> str:
    return html.escape(str(value))


def fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return esc(value)
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        value = float(value)
        if math.isnan(value):
            return "–"
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
    return esc(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, flag: str | None = None) -> str:
    """An HTML table; a row whose `flag` key is true is highlighted."""
    if not rows:
        return "<p class='muted'>(none)</p>"
    columns = list(columns or [k for k in rows[0] if k != flag])
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cls = " class='flagged'" if flag and row.get(flag) else ""
        # keys starting with "_" hold ready-made HTML; everything else is escaped
        cells = "".join(f"<td>{row.get(c, '') if c.startswith('_') else fmt(row.get(c, ''))}</td>" for c in columns)
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def image(png: bytes, alt: str) -> str:
    from modelforge.evaluate.plots import data_uri

    return f"<img class='plot' alt='{esc(alt)}' src='{data_uri(png)}'>"


def note(text: str) -> str:
    return f"<p class='muted'>{esc(text)}</p>"


def key_values(pairs: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{fmt(v)}</td></tr>" for k, v in pairs.items())
    return f"<table class='kv'>{rows}</table>"


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#1d2330;background:#fff}
header{background:#1d2a44;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:22px} header p{margin:4px 0 0;color:#c8d3ea;font-size:13px}
nav{padding:8px 32px;background:#eef2f8;font-size:13px} nav a{margin-right:14px;color:#1d4ed8;text-decoration:none}
main{padding:8px 32px 48px;max-width:1250px}
h2{border-bottom:2px solid #dbe3ef;padding-bottom:4px;margin-top:34px} h3{margin-bottom:6px}
table{border-collapse:collapse;font-size:13px;margin:8px 0 14px}
th,td{border:1px solid #d5dbe5;padding:3px 8px;text-align:left;vertical-align:top}
thead th{background:#f2f5fa} table.kv th{background:#f7f9fc;font-weight:600;width:210px}
tr.flagged td{background:#fde8e8;color:#8b1111;font-weight:600}
img.plot{max-width:100%;margin:6px 12px 6px 0;border:1px solid #e4e8ef}
img.thumb{width:56px;height:56px;image-rendering:pixelated}
.muted{color:#667085;font-size:13px} .metric{display:inline-block;margin:6px 18px 6px 0}
.metric b{display:block;font-size:22px} .tok{padding:1px 2px;border-radius:3px;margin:0 1px}
pre.sample{background:#f6f8fb;border:1px solid #dde3ec;padding:10px;white-space:pre-wrap;font-size:13px}
"""


def render_page(title: str, subtitle: str, sections: list[Section]) -> str:
    nav = "".join(f"<a href='#{s.anchor}'>{esc(s.title)}</a>" for s in sections)
    body = "".join(f"<section id='{s.anchor}'><h2>{esc(s.title)}</h2>{s.body}</section>" for s in sections)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header><nav>{nav}</nav>"
        f"<main>{body}</main></body></html>\n"
    )


# ----------------------------------------------------------------------------- data
def evaluation_rows(run: Any, data: str | Path | None, keep: Sequence[str]) -> tuple[pd.DataFrame, str]:
    """The frame to evaluate: `data`, or the run's test (else validation) split.

    Column policies apply as in training, except that columns in `keep` (the slice columns)
    are not dropped: a sensitive column left out of training can still be audited.
    """
    from modelforge.data.preprocess import apply_column_policies
    from modelforge.data.readers import read_data

    config = run.config
    drop = [c for c in config.data.drop if c not in keep]
    if data is not None:
        frame = apply_column_policies(read_data(data, config.data.bad_rows), drop, config.data.hash)
        return frame, str(data)
    from modelforge.training.recipe import load_splits

    kept = config.model_copy(update={"data": config.data.model_copy(update={"drop": drop})})
    _, valid, test = load_splits(kept)
    if test is not None:
        return test, "the run's test split"
    if valid is not None:
        return valid, "the run's validation split"
    raise DataError(f"{run.path}: the run has no test or validation split; pass --data FILE")


def evaluate_rows(run: Any, frame: pd.DataFrame, source: str) -> Evaluated:
    from modelforge.evaluate.metrics import classification_metrics, regression_metrics

    outputs = run.outputs(frame)
    target = run.preprocessor.transform_target(frame)
    if predicts_values(run.task):
        truth = np.asarray(run.preprocessor.target_encoder.inverse(target.astype(np.float64)))
        return Evaluated(frame, source, truth, outputs, regression_metrics(truth, outputs))
    metrics = classification_metrics(target, outputs, run.preprocessor.classes, run.decision)
    calibrated = run.decision.calibrated(outputs)
    uncalibrated = outputs if run.decision.calibration else None
    return Evaluated(frame, source, target, calibrated, metrics, uncalibrated)


# ----------------------------------------------------------------------------- sections
def summary_section(
    run_dir: Path, config: Any, metrics: dict[str, Any], evaluated: Evaluated | None, keys: Sequence[str]
) -> Section:
    shown = evaluated.metrics if evaluated is not None else metrics
    tiles = "".join(
        f"<span class='metric'>{esc(k)}<b>{fmt(shown[k])}</b></span>"
        for k in keys
        if isinstance(shown.get(k), int | float)
    )
    source = evaluated.source if evaluated is not None else f"eval.json ({metrics.get('split', 'held-out split')})"
    rows = f" on {len(evaluated.frame)} rows" if evaluated is not None else ""
    return Section("summary", "Summary", f"{tiles}<p class='muted'>metrics of {esc(source)}{rows}</p>")


def curves_section(history: list[dict[str, Any]]) -> Section:
    from modelforge.evaluate import plots

    if not history:
        return Section("curves", "Learning curves", note("no metrics.jsonl rows in the run"))
    body = image(plots.learning_curves(history), "learning curves")
    last = history[-1]
    numbers = {k: v for k, v in last.items() if isinstance(v, int | float)}
    body += note(f"{len(history)} logged rows; last: " + ", ".join(f"{k} {fmt(v)}" for k, v in numbers.items()))
    return Section("curves", "Learning curves", body)


def classification_sections(run: Any, evaluated: Evaluated) -> list[Section]:
    from modelforge.evaluate import plots
    from modelforge.evaluate.curves import precision_recall_curve, reliability, roc_curve

    classes = [str(c) for c in run.preprocessor.classes]
    metrics = evaluated.metrics
    per_class = [{"class": label, **values} for label, values in metrics["per_class"].items()]
    body = image(plots.confusion(np.asarray(metrics["confusion_matrix"]), classes), "confusion matrix")
    body += "<h3>Per-class precision, recall and F1</h3>" + table(per_class)
    shown = [1] if len(classes) == 2 else [k for k in range(len(classes)) if (evaluated.y_true == k).any()][:10]
    roc = {classes[k]: roc_curve(evaluated.y_true == k, evaluated.outputs[:, k]) for k in shown}
    pr = {classes[k]: precision_recall_curve(evaluated.y_true == k, evaluated.outputs[:, k]) for k in shown}
    curves = image(plots.threshold_curves(roc, "roc"), "ROC curve") + image(plots.threshold_curves(pr, "pr"), "PR")
    if len(classes) > 2:
        curves += note("one-vs-rest curves" + (" (first 10 classes)" if len(classes) > 10 else ""))
    predicted = evaluated.outputs.argmax(axis=1)
    calibration = reliability(predicted == evaluated.y_true, evaluated.outputs.max(axis=1))
    calibration_body = image(plots.reliability_diagram(calibration), "reliability diagram") + note(
        "bars: share of correct predictions among rows whose top probability falls in the bin; "
        "on the diagonal the probabilities can be read as frequencies"
    )
    sections = [
        Section("classification", "Confusion matrix and per-class scores", body),
        Section("roc", "ROC and precision-recall curves", curves),
        Section("calibration", "Calibration", calibration_body),
    ]
    if len(classes) == 2:
        sections.append(decision_section(run, evaluated))
    return sections


def decision_section(run: Any, evaluated: Evaluated) -> Section:
    """Two classes: the decision rule, the precision-recall curve with its operating point, the threshold
    trade-off and cost curves with the chosen threshold marked, and reliability before/after calibration."""
    from modelforge.decision import reliability_bins, threshold_curve
    from modelforge.evaluate import plots
    from modelforge.evaluate.curves import precision_recall_curve

    decision, metrics = run.decision, evaluated.metrics
    positive = decision.positive
    label = str(run.preprocessor.classes[positive])
    outcome = evaluated.y_true == positive
    score = evaluated.outputs[:, positive]
    threshold = float(metrics["threshold"])
    saved = decision.threshold is not None
    body = key_values(
        {
            "decision rule": decision.rule(),
            "positive class": label,
            "threshold": fmt(threshold) + ("" if saved else " (no decision: section; the most probable class)"),
            "at the threshold": f"precision {fmt(metrics['positive']['precision'])}, recall "
            f"{fmt(metrics['positive']['recall'])}, flag rate {fmt(metrics['flag_rate'])}",
            "average precision": fmt(metrics["average_precision"]),
            "expected cost per row": f"{fmt(metrics['expected_cost'])} (false positive "
            f"{fmt(metrics['cost']['false_positive'])}, false negative {fmt(metrics['cost']['false_negative'])})",
            "Brier score": fmt(metrics["brier"]),
        }
    )
    chosen = f"threshold {threshold:.3g}"
    pr = precision_recall_curve(outcome, score)
    point = (metrics["positive"]["recall"], metrics["positive"]["precision"])
    body += image(plots.precision_recall_point(pr, *point, chosen), "precision-recall curve with operating point")
    curve = threshold_curve(outcome, score)
    thresholds = np.clip(curve.thresholds, 0.0, 1.0)
    series = {"precision": curve.precision, "recall": curve.recall, "flag rate": curve.flag_rate}
    costs = metrics["cost"]
    cost = curve.cost(costs["false_positive"], costs["false_negative"])
    body += image(
        plots.threshold_tradeoff(thresholds, series, cost, "expected cost per row", threshold, chosen), "trade-off"
    )
    bins = {"calibrated" if evaluated.uncalibrated is not None else "model": reliability_bins(outcome, score)}
    if evaluated.uncalibrated is not None:
        before = reliability_bins(outcome, evaluated.uncalibrated[:, positive])
        bins = {"before calibration": before, **bins}
    body += image(plots.reliability_before_after(bins), "reliability before and after calibration")
    ece = f"ECE {fmt(metrics['ece'])}"
    if "ece_uncalibrated" in metrics:
        ece = f"ECE {fmt(metrics['ece_uncalibrated'])} before calibration, {fmt(metrics['ece'])} after"
    body += note(f"{ece}; figures on {len(outcome)} rows, the threshold was chosen on the validation split")
    return Section("decision", f"Decision: flagging {label}", body)


def regression_sections(evaluated: Evaluated) -> list[Section]:
    from modelforge.evaluate import plots

    body = image(plots.predicted_vs_actual(evaluated.y_true, evaluated.outputs), "predicted vs actual")
    body += image(plots.residuals(evaluated.y_true, evaluated.outputs), "residuals")
    return [Section("regression", "Predicted vs actual, residuals", body)]


def input_cells(run: Any, frame: pd.DataFrame, rows: list[int]) -> list[dict[str, str]]:
    """The inputs of some rows as HTML cells: tabular values, the text, or an image thumbnail."""
    from modelforge.evaluate import plots

    encoders = run.preprocessor.encoders
    arrays = run.preprocessor.transform_inputs(frame.iloc[rows]) if any(e.kind == "image" for e in encoders) else {}
    cells = []
    for i, row in enumerate(rows):
        parts = []
        tabular = [e.name for e in encoders if e.kind in ("numeric", "category")]
        if tabular:
            shown = ", ".join(f"{name}={fmt(frame[name].iloc[row])}" for name in tabular[:12])
            parts.append(esc(shown) + (" …" if len(tabular) > 12 else ""))
        for encoder in encoders:
            if encoder.kind == "text":
                parts.append(f"<q>{esc(str(frame[encoder.name].iloc[row])[:300])}</q>")
            elif encoder.kind == "image" and "image" in arrays:
                uri = plots.data_uri(plots.input_thumbnail(arrays["image"][i]))
                parts.append(f"<img class='thumb' alt='input' src='{uri}'>")
        cells.append({"_input": "<br>".join(parts)})
    return cells


def mistakes_section(run: Any, evaluated: Evaluated, explanations: dict[int, Any]) -> Section:
    classes = [str(c) for c in run.preprocessor.classes]
    rows = _mistake_rows(run, evaluated)
    if predicts_values(run.task):
        title, intro = "Largest errors", "rows with the largest absolute error"
    else:
        title, intro = "Most confident mistakes", "wrong predictions with the highest predicted probability"
    if not rows:
        return Section("mistakes", title, note("no mistakes on these rows"))
    arrays = run.preprocessor.transform_inputs(evaluated.frame.iloc[rows])
    table_rows = []
    for i, (cell, row) in enumerate(zip(input_cells(run, evaluated.frame, rows), rows, strict=True)):
        entry: dict[str, Any] = {"row": row}
        if predicts_values(run.task):
            entry.update(actual=evaluated.y_true[row], predicted=evaluated.outputs[row])
        else:
            predicted_class = int(run.decision.choose(evaluated.outputs[row : row + 1])[0])
            entry.update(
                actual=classes[int(evaluated.y_true[row])],
                predicted=classes[predicted_class],
                probability=evaluated.outputs[row, predicted_class],
            )
        entry.update(cell)
        entry["_why"] = explanation_cell(explanations.get(row), {k: v[i] for k, v in arrays.items()})
        table_rows.append(entry)
    columns = [*[c for c in table_rows[0] if not c.startswith("_")], "_input", "_why"]
    body = note(intro + "; why: the largest Integrated Gradients attributions toward the predicted value or class")
    html_table = table(table_rows, columns)
    body += html_table.replace("<th>_input</th>", "<th>input</th>").replace("<th>_why</th>", "<th>why</th>")
    return Section("mistakes", title, body)


def explanation_cell(explanation: Any, inputs: dict[str, np.ndarray]) -> str:
    from modelforge.evaluate import plots

    if explanation is None:
        return ""
    parts = []
    top = explanation.top_features(4)
    if top:
        parts.append(esc(", ".join(f"{name} {value:+.3g}" for name, value in top)))
    if explanation.tokens:
        parts.append(token_spans(explanation.tokens, explanation.token_scores))
    for name, values in explanation.maps.items():
        aspect = "equal" if name == "image" else "auto"
        uri = plots.data_uri(plots.attribution_heatmap(inputs[name], values, "", aspect))
        parts.append(f"<img class='plot' style='width:300px' alt='attribution map' src='{uri}'>")
    return "<br>".join(parts)


def token_spans(tokens: Sequence[str], scores: Sequence[float]) -> str:
    """Tokens coloured by attribution: red pushes toward the explained class, blue away."""
    limit = max((abs(s) for s in scores), default=0.0) or 1.0
    spans = []
    for token, score in zip(tokens, scores, strict=False):
        alpha = min(abs(score) / limit, 1.0) * 0.8
        color = f"rgba(220,38,38,{alpha:.2f})" if score > 0 else f"rgba(37,99,235,{alpha:.2f})"
        spans.append(f"<span class='tok' title='{score:+.4f}' style='background:{color}'>{esc(token)}</span>")
    return "".join(spans)


def explanation_section(run: Any, evaluated: Evaluated, mistake_rows: list[int]) -> tuple[Section, dict[int, Any]]:
    """Global importance (tabular), attention maps (transformers); explanations of the mistakes."""
    from modelforge.evaluate import plots
    from modelforge.evaluate.explain import attention_maps, explain_frame, global_importance, has_attention

    frame = evaluated.frame
    body = ""
    explained = {e.row: e for e in explain_frame(run, frame, mistake_rows)} if mistake_rows else {}
    if any(e.kind in ("numeric", "category") for e in run.preprocessor.encoders):
        sample = list(range(min(len(frame), IMPORTANCE_ROWS)))
        importance = global_importance(explain_frame(run, frame, sample, steps=32))
        body += image(plots.importance_bars(importance, "feature importance (Integrated Gradients)"), "importance")
        body += note(f"mean |attribution| over {len(sample)} rows; baseline: training means / unknown category")
    if has_attention(run.model) and mistake_rows:
        import torch

        row = mistake_rows[0]
        inputs = {k: torch.from_numpy(v) for k, v in run.preprocessor.transform_inputs(frame.iloc[[row]]).items()}
        tokens = explained[row].tokens or [str(i) for i in range(inputs["text"].shape[1])]
        for layer, weights in enumerate(attention_maps(run.model, inputs)):
            title = f"row {row}, layer {layer}: attention per head (rows: queries, columns: keys)"
            body += image(plots.attention_grid(weights[0], tokens, title), title)
    if explained:
        body += note("the attributions of each mistake are in the 'why' column of the table above")
    if not body:
        body = note("no mistakes to explain")
    return Section("explain", "Explanations", body), explained


def _decision_options(run: Any) -> dict[str, Any]:
    """Slices of a classification run label rows by its decision rule, with its positive class."""
    decision = run.decision
    if decision is None or getattr(decision, "positive", None) is None:
        return {"decision": decision}
    return {"decision": decision, "positive": run.preprocessor.classes[decision.positive]}


def slices_section(run: Any, evaluated: Evaluated, slice_by: Sequence[str]) -> tuple[Section, list[Any]]:
    from modelforge.evaluate.slices import largest_gaps, slice_metrics

    reports = [
        slice_metrics(
            column,
            evaluated.frame[column],
            evaluated.y_true,
            evaluated.outputs,
            run.task,
            run.preprocessor.classes,
            **_decision_options(run),
        )
        for column in slice_by
    ]
    gaps = largest_gaps(reports)
    body = "<h3>Largest gaps</h3>"
    body += table(
        [
            {"column": g.column, "gap": g.metric, "value": g.value, "between": g.detail, "flagged": g.flagged}
            for g in gaps
        ],
        ["column", "gap", "value", "between"],
        flag="flagged",
    )
    body += note(
        "flagged (red): a rate gap above 0.10, or a regression error gap above 25% of the overall value; "
        "groups under 10 rows are listed but left out of the gaps"
    )
    for report in reports:
        keys = (
            ["accuracy", "f1", "selection_rate", "true_positive_rate"]
            if predicts_labels(run.task)
            else ["rmse", "mae", "r2", "mean_prediction", "mean_target"]
        )
        rows = [{"value": g.value, "n": g.n, **{k: g.metrics.get(k) for k in keys}} for g in report.groups]
        body += f"<h3>{esc(report.column)}</h3>" + table(rows)
    if predicts_labels(run.task) and len(run.preprocessor.classes) == 2:
        positive = _decision_options(run).get("positive", run.preprocessor.classes[1])
        body += note(f"selection rate and true positive rate refer to class {positive}, labelled by the run's rule")
    return Section("slices", "Slices", body), reports


def model_card_section(
    run_dir: Path,
    config: Any,
    model_info: dict[str, Any],
    metrics: dict[str, Any],
    slice_reports: list[Any],
    data_fields: dict[str, Any],
    length_fields: dict[str, Any],
) -> Section:
    environment = _read_json(run_dir / "environment.json")
    card = config.card
    fields = ["description", "intended_use", "out_of_scope", "limitations", "ethical_considerations", "license"]
    stated = {f.replace("_", " "): getattr(card, f, None) for f in fields} if card else {}
    body = "<h3>Model details</h3>" + key_values(
        {
            "run": run_dir.name,
            "task": config.task,
            "model type": model_info.get("type", config.model.type),
            "options": json.dumps(model_info.get("options", config.model.options())),
            "parameters": model_info.get("parameters"),
            "owners": ", ".join(card.owners) if card and card.owners else "not stated",
            "contact": card.contact if card and card.contact else "not stated",
            "trained": f"{environment.get('started_at', '?')} → {environment.get('finished_at', '?')}",
            "code commit": environment.get("git_commit") or "unknown",
            "versions": ", ".join(f"{k} {v}" for k, v in (environment.get("versions") or {}).items()),
        }
    )
    body += "<h3>Intended use and limitations</h3>"
    body += (
        key_values({k: v or "not stated" for k, v in stated.items()})
        if card
        else note(
            "not stated: add a `card:` section to the config (description, intended_use, out_of_scope, "
            "limitations, ethical_considerations, owners, license, contact)"
        )
    )
    hashes = environment.get("data") or {}
    body += "<h3>Data</h3>" + key_values(data_fields)
    body += table([{"file": path, "sha256": digest} for path, digest in hashes.items()])
    if (run_dir / "preprocessing.json").is_file():
        body += "<h3>Preprocessing</h3>" + table(preprocessing_rows(run_dir))
    body += "<h3>Training</h3>" + key_values(length_fields | card_training_fields(config, metrics))
    decision = _read_json(run_dir / "decision.json")
    if decision:
        body += "<h3>Decision rule</h3>" + key_values(
            {
                "rule": decision.get("rule"),
                "objective": json.dumps(decision.get("objective")),
                "calibration": (decision.get("calibration") or {}).get("method", "none"),
                "on the validation split": json.dumps(decision.get("validation")),
            }
        )
    shown = {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    body += f"<h3>Metrics ({esc(metrics.get('split', 'held-out'))} split, from eval.json)</h3>" + key_values(shown)
    flagged = [g for report in slice_reports for g in report.gaps if g.flagged]
    body += "<h3>Slices</h3>" + (
        "".join(f"<p>⚠ {esc(g.column)}: {esc(g.metric)} {fmt(g.value)} ({esc(g.detail)})</p>" for g in flagged)
        if flagged
        else note("no flagged gaps" if slice_reports else "no slices evaluated (use --slice-by COLUMN)")
    )
    return Section("card", "Model card", body)


def training_files(config: Any) -> dict[str, Any]:
    from modelforge.data.readers import train_files

    return {"training files": ", ".join(train_files(config.data))}


def corpus_data_fields(config: Any, model_info: dict[str, Any]) -> dict[str, Any]:
    data = config.data
    return training_files(config) | {
        "tokenizer": f"{model_info.get('tokenizer', data.tokenizer)}, vocabulary {model_info.get('vocab_size')}",
        "validation": f"last {data.valid_fraction:.0%} of the tokens",
    }


def table_data_fields(config: Any, model_info: dict[str, Any]) -> dict[str, Any]:
    data = config.data
    fields = training_files(config)
    split = f"valid {data.split.valid}, test {data.split.test}, seed {data.split.seed or config.seed}"
    return fields | {
        "target": data.target,
        "split": f"test file {data.test}" if data.test else split,
        "dropped columns": ", ".join(data.drop) or "none",
        "hashed columns": ", ".join(data.hash) or "none",
    }


def step_fields(config: Any, metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        "max steps": config.train.max_steps,
        "steps run": metrics.get("steps"),
        "tokens seen": metrics.get("tokens_seen"),
    }


def epoch_fields(config: Any, metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        "epochs (max)": config.train.epochs,
        "epochs run": metrics.get("epochs"),
        "best epoch": metrics.get("best_epoch"),
    }


def card_training_fields(config: Any, metrics: dict[str, Any]) -> dict[str, Any]:
    train = config.train
    return {
        "batch size": train.batch_size,
        "optimizer": f"{train.optimizer}, lr {train.lr}, weight decay {train.weight_decay}",
        "schedule": f"{train.schedule}, warmup {train.warmup_steps} steps",
        "loss": train.loss or "task default",
        "early stopping": train.early_stopping.model_dump() if train.early_stopping else "off",
        "precision": train.precision,
        "seed": config.seed,
        "training time (s)": metrics.get("train_seconds"),
    }


def preprocessing_rows(run_dir: Path) -> list[dict[str, Any]]:
    state = _read_json(run_dir / "preprocessing.json")
    rows = []
    for feature in state.get("features", []):
        settings = {k: v for k, v in feature["state"].items() if not k.endswith("_") and v not in (None, {}, [])}
        learned = feature["state"]
        size = learned.get("vocabulary_")
        detail = ", ".join(f"{k}={v}" for k, v in settings.items())
        if size is not None:
            detail += f"{', ' if detail else ''}vocabulary {len(size)}"
        if learned.get("size_"):
            detail += f", size {learned['size_']}, channels {learned.get('channels_')}"
        rows.append({"feature": feature["name"], "type": feature["type"], "settings": detail})
    return rows


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


# ----------------------------------------------------------------------------- language models
def language_model_sections(
    run_dir: Path, config: Any, history: list[dict[str, Any]], prompts: Sequence[str]
) -> list[Section]:
    from modelforge.evaluate import plots

    metrics = _read_json(run_dir / "eval.json")
    losses = [row["val_loss"] for row in history if isinstance(row.get("val_loss"), int | float)]
    final = metrics.get("val_loss", losses[-1] if losses else None)
    body = ""
    steps = [(row.get("step", i + 1), math.exp(row["val_loss"])) for i, row in enumerate(history) if "val_loss" in row]
    if steps:
        body += image(plots.perplexity_curve(*zip(*steps, strict=True)), "validation perplexity")
    if isinstance(final, int | float):
        perplexity = metrics.get("perplexity", math.exp(final))
        body += key_values(
            {
                "validation loss": final,
                "perplexity": perplexity,
                "best logged validation loss": min(losses, default=final),
            }
        )
    sections = [Section("lm", "Loss and perplexity", body or note("no validation loss logged"))]
    sections.append(Section("samples", "Sample generations", sample_generations(run_dir, prompts)))
    return sections


def sample_generations(run_dir: Path, prompts: Sequence[str], max_new_tokens: int = 120) -> str:
    try:
        from modelforge.text.generate import load_generator
    except ImportError:
        return note("sample generations skipped: modelforge.text.generate is not available in this install")
    try:
        generator = load_generator(run_dir)
    except ModelforgeError as exc:
        return note(f"sample generations skipped: {exc}")
    body = ""
    for prompt in prompts:
        try:
            text = generator.generate(prompt, max_new_tokens=max_new_tokens, temperature=0.8, top_k=40, seed=0)
        except ModelforgeError as exc:  # e.g. a character the tokenizer never saw
            body += note(f"prompt {prompt!r} skipped: {exc}")
            continue
        shown = esc(prompt) + f"<b>{esc(text)}</b>"
        body += f"<h3>prompt: <code>{esc(prompt)!r}</code></h3><pre class='sample'>{shown}</pre>"
    return body + note(f"prompt, then in bold {max_new_tokens} new tokens; temperature 0.8, top-k 40, seed 0")


# ----------------------------------------------------------------------------- entry point
def load_config_of(run_dir: Path) -> Any:
    from modelforge.config import RunConfig

    path = run_dir / "config.yaml"
    if not path.is_file():
        raise RunError(f"{run_dir}: not a run directory (no config.yaml)")
    return RunConfig.model_validate(yaml.safe_load(path.read_text()))


def build_report(
    run_dir: str | Path,
    data: str | Path | None = None,
    slice_by: Sequence[str] = (),
    prompts: Sequence[str] = ("\n",),
    explain: bool = True,
) -> str:
    """The report's HTML for a run directory, built by its task's report (see modelforge.tasks)."""
    from modelforge.tasks import task_of_run

    run_dir = Path(run_dir)
    task = task_of_run(run_dir, "report")
    page: str = task.call(
        "report", task.report, run_dir, data=data, slice_by=slice_by, prompts=prompts, explain=explain
    )
    return page


def page_heading(run_dir: Path, config: Any) -> tuple[str, str]:
    title = f"modelforge report: {run_dir.name}"
    return title, f"{config.task} · {config.model.type} · generated {time.strftime('%Y-%m-%d %H:%M')}"


def summary_report(run_dir: Path, data: str | Path | None, slice_by: Sequence[str], **_: Any) -> str:
    """Tasks without row-level diagnostics: headline metrics, learning curves and the model card."""
    from modelforge.files import read_jsonl
    from modelforge.run import load_run

    if data is not None or slice_by:
        raise DataError(f"{run_dir}: --data and --slice-by apply to classification and regression runs")
    config = load_config_of(run_dir)
    run = load_run(run_dir)
    metrics = _read_json(run_dir / "eval.json")
    keys = getattr(run, "headline", None) or TASKS.get(config.task).headline
    sections = [
        summary_section(run_dir, config, metrics, None, keys),
        curves_section(read_jsonl(run_dir / "metrics.jsonl")),
    ]
    model_info = _read_json(run_dir / "model.json")
    sections.append(
        model_card_section(
            run_dir, config, model_info, metrics, [], training_files(config), epoch_fields(config, metrics)
        )
    )
    return render_page(*page_heading(run_dir, config), sections)


def language_model_report(run_dir: Path, prompts: Sequence[str], **_: Any) -> str:
    from modelforge.files import read_jsonl

    config = load_config_of(run_dir)
    history = read_jsonl(run_dir / "metrics.jsonl")
    metrics = _read_json(run_dir / "eval.json")
    model_info = _read_json(run_dir / "model.json")
    sections = [
        summary_section(run_dir, config, metrics, None, TASKS.get(config.task).headline),
        curves_section(history),
    ]
    sections += language_model_sections(run_dir, config, history, prompts)
    fields = corpus_data_fields(config, model_info)
    sections.append(model_card_section(run_dir, config, model_info, metrics, [], fields, step_fields(config, metrics)))
    return render_page(*page_heading(run_dir, config), sections)


def supervised_report(run_dir: Path, data: str | Path | None, slice_by: Sequence[str], explain: bool, **_: Any) -> str:
    """Classification and regression: diagnostics on evaluated rows, mistakes, explanations, slices, card."""
    from modelforge.files import read_jsonl
    from modelforge.run import load_run

    config = load_config_of(run_dir)
    history = read_jsonl(run_dir / "metrics.jsonl")
    metrics = _read_json(run_dir / "eval.json")
    run = load_run(run_dir)
    evaluated, problem = None, ""
    try:
        frame, source = evaluation_rows(run, data, slice_by)
        evaluated = evaluate_rows(run, frame, source)
    except DataError as exc:
        if data is not None or slice_by:
            raise
        problem = f"no rows to evaluate ({exc}); showing what the run directory holds"
    headline = TASKS.get(config.task).headline
    sections = [summary_section(run_dir, config, metrics, evaluated, headline), curves_section(history)]
    slice_reports: list[Any] = []
    if evaluated is None:
        sections.append(Section("diagnostics", "Diagnostics", note(problem)))
    else:
        missing = [c for c in slice_by if c not in evaluated.frame.columns]
        if missing:
            from modelforge.errors import did_you_mean

            known = [*evaluated.frame.columns, *config.data.drop]
            raise DataError(f"--slice-by: column {missing[0]!r} not in the data{did_you_mean(missing[0], known)}")
        sections += (
            regression_sections(evaluated) if predicts_values(run.task) else classification_sections(run, evaluated)
        )
        mistakes = _mistake_rows(run, evaluated)
        explained: dict[int, Any] = {}
        explain_section = Section("explain", "Explanations", note("skipped (--no-explain)"))
        if explain:
            try:
                explain_section, explained = explanation_section(run, evaluated, mistakes[:MAX_MISTAKES])
            except ModelforgeError as exc:  # a model whose inputs attributions cannot reach
                explain_section = Section("explain", "Explanations", note(f"skipped: {exc}"))
        sections.append(mistakes_section(run, evaluated, explained))
        sections.append(explain_section)
        if slice_by:
            section, slice_reports = slices_section(run, evaluated, slice_by)
            sections.append(section)
    fields = table_data_fields(config, run.model_info)
    card = model_card_section(
        run_dir, config, run.model_info, metrics, slice_reports, fields, epoch_fields(config, metrics)
    )
    sections.append(card)
    return render_page(*page_heading(run_dir, config), sections)


def _mistake_rows(run: Any, evaluated: Evaluated) -> list[int]:
    if predicts_values(run.task):
        return [int(i) for i in np.argsort(-np.abs(evaluated.outputs - evaluated.y_true))[:MAX_MISTAKES]]
    predicted = run.decision.choose(evaluated.outputs)
    wrong = np.flatnonzero(predicted != evaluated.y_true)
    confidence = evaluated.outputs.max(axis=1)
    return [int(i) for i in wrong[np.argsort(-confidence[wrong])][:MAX_MISTAKES]]


def write_report(run_dir: str | Path, out: str | Path | None = None, **options: Any) -> Path:
    from modelforge.files import atomic_write_text

    target = Path(out) if out is not None else Path(run_dir) / "report.html"
    atomic_write_text(target, build_report(run_dir, **options))
    return target
