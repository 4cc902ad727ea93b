"""`modelforge explain` output: printed top features, attributions.json, heat-map PNGs, index.html.

OUT/
  attributions.json             every row's attributions (features, tokens, maps)
  row5_image.png                input beside its attribution map (image / audio inputs)
  row5_attention_layer0.png     attention per head (transformer models)
  index.html                    the rows, their top features and tokens, the images linked
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modelforge.evaluate.report import esc, render_page, table, token_spans


def explain_to_folder(
    run_dir: str | Path,
    data: str | Path,
    rows: list[int],
    method: str,
    out: str | Path | None,
    *,
    steps: int = 64,
    explained_class: Any = None,
    top: int = 5,
) -> tuple[Path, list[Any], list[str]]:
    """Explain rows of `data` with a run; write the folder; return it, the explanations and printable lines."""
    import torch

    from modelforge.data.preprocess import apply_column_policies
    from modelforge.data.readers import read_data
    from modelforge.evaluate import plots
    from modelforge.evaluate.explain import attention_maps, explain_frame, has_attention
    from modelforge.files import atomic_write_bytes, atomic_write_json, atomic_write_text
    from modelforge.run import load_run
    from modelforge.tasks import task_of_run

    task_of_run(run_dir, "explain")
    run = load_run(run_dir)
    policies = run.config.data
    frame = apply_column_policies(read_data(data, policies.bad_rows), policies.drop, policies.hash)
    explanations = explain_frame(run, frame, rows, method=method, steps=steps, explained_class=explained_class)
    folder = Path(out) if out is not None else Path(run_dir) / "explain"
    folder.mkdir(parents=True, exist_ok=True)
    images: dict[int, list[str]] = {}
    for explanation in explanations:
        arrays = run.preprocessor.transform_inputs(frame.iloc[[explanation.row]])
        for name, values in explanation.maps.items():
            path = f"row{explanation.row}_{name}.png"
            title = f"row {explanation.row}: {method} toward {explanation.explained_class or 'the value'}"
            aspect = "equal" if name == "image" else "auto"
            atomic_write_bytes(folder / path, plots.attribution_heatmap(arrays[name][0], values, title, aspect))
            images.setdefault(explanation.row, []).append(path)
        if has_attention(run.model) and "text" in arrays:
            inputs = {k: torch.from_numpy(v) for k, v in arrays.items()}
            tokens = explanation.tokens or [str(i) for i in range(arrays["text"].shape[1])]
            for layer, weights in enumerate(attention_maps(run.model, inputs)):
                path = f"row{explanation.row}_attention_layer{layer}.png"
                title = f"row {explanation.row}, layer {layer}: attention per head"
                atomic_write_bytes(folder / path, plots.attention_grid(weights[0], tokens, title))
                images.setdefault(explanation.row, []).append(path)
    atomic_write_json(
        folder / "attributions.json",
        {"run": str(run_dir), "data": str(data), "method": method, "rows": [e.to_json() for e in explanations]},
    )
    atomic_write_text(folder / "index.html", index_page(run_dir, method, explanations, images, top))
    return folder, explanations, [line for e in explanations for line in summary_lines(e, images, top)]


def summary_lines(explanation: Any, images: dict[int, list[str]], top: int) -> list[str]:
    target = f"toward {explanation.explained_class}" if explanation.explained_class is not None else "of the value"
    predicted = explanation.predicted
    shown = f"{predicted:.4g}" if isinstance(predicted, float) else predicted
    lines = [
        f"row {explanation.row}: predicted {shown}; attributions {target} "
        f"(score {explanation.score:.4g}, baseline {explanation.baseline_score:.4g})"
    ]
    features = explanation.top_features(top)
    if features:
        lines.append("  top features: " + ", ".join(f"{name} {value:+.4g}" for name, value in features))
    if explanation.tokens:
        order = np.argsort(-np.abs(explanation.token_scores))[:top]
        tokens = ", ".join(f"{explanation.tokens[i]!r} {explanation.token_scores[i]:+.4g}" for i in order)
        lines.append(f"  top tokens: {tokens}")
    for path in images.get(explanation.row, []):
        lines.append(f"  image: {path}")
    return lines


def index_page(
    run_dir: str | Path, method: str, explanations: list[Any], images: dict[int, list[str]], top: int
) -> str:
    from modelforge.evaluate.report import Section

    sections = []
    for explanation in explanations:
        body = "<p>" + esc(summary_lines(explanation, {}, top)[0]) + "</p>"
        features = [{"feature": k, "attribution": v} for k, v in explanation.top_features(len(explanation.features))]
        if features:
            body += table(features)
        if explanation.tokens:
            body += "<p>" + token_spans(explanation.tokens, explanation.token_scores) + "</p>"
        for path in images.get(explanation.row, []):
            body += f"<a href='{esc(path)}'><img class='plot' alt='{esc(path)}' src='{esc(path)}'></a>"
        sections.append(Section(f"row{explanation.row}", f"Row {explanation.row}", body))
    return render_page(f"modelforge explain: {Path(run_dir).name}", f"method {method}", sections)
