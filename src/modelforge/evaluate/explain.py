"""Attributions for a trained run with Captum: which inputs moved a prediction, and by how much.

Methods: `ig` (Integrated Gradients, the default), `saliency` (|gradient|) and `occlusion`
(the output change when a feature is replaced by its baseline).

Category and text inputs are integer codes, so gradients cannot reach them. Each embedding
layer of the model is matched to the input it reads (with a probe batch), and attributions
are taken on the embedding vectors, then summed per column or per token. Numeric and
image inputs are attributed directly. The baseline is "nothing known": numeric columns at
their training mean (0 after scaling), images at the channel mean, categories at the
unknown bucket, text tokens at the padding embedding.

The explained score is the logit of the explained class (the predicted one unless asked
otherwise; a single-logit binary model is read as the logits [−z, z]) or, for regression,
the predicted value in target units. Integrated Gradients satisfies completeness: the
attributions of a row sum to score(row) − score(baseline), up to the returned `delta`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from modelforge.errors import ModelforgeError
from modelforge.registry import Registry
from modelforge.tasks import TASKS, predicts_values

Tensors = dict[str, torch.Tensor]
FLOAT_KINDS = ("numeric", "image", "audio")


@dataclass
class RowExplanation:
    """Attributions of one row. `features` maps a tabular column to its attribution; `tokens`
    and `token_scores` cover the text input; `maps` holds one 2-D map per image/audio input."""

    row: int
    explained_class: str | None
    predicted: str | float
    score: float
    baseline_score: float
    features: dict[str, float] = field(default_factory=dict)
    tokens: list[str] = field(default_factory=list)
    token_scores: list[float] = field(default_factory=list)
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    padding: float = 0.0  # attribution of the text's padding positions (part of the total)
    delta: float | None = None

    @property
    def total(self) -> float:
        maps = sum(float(m.sum()) for m in self.maps.values())
        return float(sum(self.features.values()) + sum(self.token_scores) + maps + self.padding)

    def top_features(self, k: int = 5) -> list[tuple[str, float]]:
        return sorted(self.features.items(), key=lambda item: -abs(item[1]))[:k]

    def to_json(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "explained_class": self.explained_class,
            "predicted": self.predicted,
            "score": self.score,
            "baseline_score": self.baseline_score,
            "features": self.features,
            "tokens": self.tokens,
            "token_scores": self.token_scores,
            "maps": {name: values.tolist() for name, values in self.maps.items()},
            "padding": self.padding,
            "delta": self.delta,
        }


# ----------------------------------------------------------------------------- embeddings
def match_embeddings(model: nn.Module, inputs: Tensors, spec: Any) -> dict[str, nn.Embedding]:
    """Which nn.Embedding reads which integer input: 'text', or 'category:<index>'.

    A probe batch of random codes is run through the model; each embedding layer is matched to
    the input (or category column) whose values it received.
    """
    probe = _probe_batch(inputs, spec)
    seen: list[tuple[nn.Embedding, torch.Tensor]] = []
    hooks = [
        module.register_forward_hook(lambda m, args, _out: seen.append((m, args[0].detach())))
        for module in model.modules()
        if isinstance(module, nn.Embedding)
    ]
    try:
        with torch.no_grad():
            model(probe)
    finally:
        for hook in hooks:
            hook.remove()
    candidates: dict[str, torch.Tensor] = {}
    if "text" in probe:
        candidates["text"] = probe["text"]
    if "category" in probe:
        for i in range(probe["category"].shape[1]):
            candidates[f"category:{i}"] = probe["category"][:, i]
    matched: dict[str, nn.Embedding] = {}
    for module, received in seen:
        for key, values in candidates.items():
            if key in matched or received.shape[0] != values.shape[0]:
                continue
            if torch.equal(received, values[:, : received.shape[1]] if received.ndim == 2 else values):
                matched[key] = module
                break
    missing = sorted(set(candidates) - set(matched))
    if missing:
        raise ModelforgeError(
            f"explain: cannot find the embedding layer that reads {', '.join(missing)} in model "
            f"{type(model).__name__}; attributions need each integer input to go through an nn.Embedding"
        )
    return matched


def _probe_batch(inputs: Tensors, spec: Any, rows: int = 64) -> Tensors:
    """Random codes per integer input (text without padding, so no position is trimmed)."""
    generator = torch.Generator().manual_seed(0)
    probe: Tensors = {}
    for key, values in inputs.items():
        if values.dtype.is_floating_point:
            probe[key] = torch.zeros((rows, *values.shape[1:]), dtype=values.dtype)
        elif key == "text":
            probe[key] = torch.randint(1, max(spec.text_vocab_size, 2), (rows, values.shape[1]), generator=generator)
        else:
            columns = [torch.randint(0, c, (rows,), generator=generator) for c in spec.category_cardinalities]
            probe[key] = torch.stack(columns, dim=1)
    return probe


@contextlib.contextmanager
def replaced_outputs(replacements: dict[nn.Module, torch.Tensor]) -> Iterator[None]:
    """While active, each module returns the given tensor instead of computing its output."""
    hooks = [module.register_forward_hook(lambda _m, _a, _o, v=value: v) for module, value in replacements.items()]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


# ----------------------------------------------------------------------------- the score
@dataclass
class ScoreFunction:
    """The model as a function of continuous tensors: float inputs plus embedding outputs.

    `names` orders the continuous tensors; integer inputs ride along unchanged.
    """

    model: nn.Module
    inputs: Tensors
    embeddings: dict[str, nn.Embedding]
    names: list[str]
    output: Callable[[torch.Tensor], torch.Tensor]

    def continuous(self) -> tuple[torch.Tensor, ...]:
        """The row's own continuous tensors (float inputs as given, embedding outputs as computed)."""
        captured: dict[str, torch.Tensor] = {}
        hooks = [
            module.register_forward_hook(lambda _m, _a, out, key=key: captured.__setitem__(key, out.detach()))
            for key, module in self.embeddings.items()
        ]
        try:
            with torch.no_grad():
                self.model(self.inputs)
        finally:
            for hook in hooks:
                hook.remove()
        return tuple(captured[name] if name in self.embeddings else self.inputs[name].float() for name in self.names)

    def baselines(self) -> tuple[torch.Tensor, ...]:
        values = []
        for name, tensor in zip(self.names, self.continuous(), strict=True):
            if name in self.embeddings:
                # the padding / unknown code 0: "no information" in embedding space
                values.append(self.embeddings[name].weight[0].detach().expand_as(tensor).clone())
            else:
                values.append(torch.zeros_like(tensor))
        return tuple(values)

    def __call__(self, *tensors: torch.Tensor) -> torch.Tensor:
        continuous, integer = tensors[: len(self.names)], tensors[len(self.names) :]
        batch = dict(zip(self._integer_names(), integer, strict=True))
        replacements: dict[nn.Module, torch.Tensor] = {}
        for name, value in zip(self.names, continuous, strict=True):
            if name in self.embeddings:
                replacements[self.embeddings[name]] = value
            else:
                batch[name] = value
        with replaced_outputs(replacements):
            return self.output(self.model(batch))

    def _integer_names(self) -> list[str]:
        return [k for k, v in self.inputs.items() if not v.dtype.is_floating_point]

    def integer_inputs(self) -> tuple[torch.Tensor, ...]:
        return tuple(self.inputs[k] for k in self._integer_names())


def output_transform(task: str, output_dim: int, target_scale: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """Raw model outputs → one column per explainable class (or the value, for regression)."""
    if predicts_values(task):
        return lambda raw: raw.float() * target_scale
    if output_dim == 1:
        return lambda raw: torch.cat([-raw, raw], dim=1).float()
    return lambda raw: raw.float()


# ----------------------------------------------------------------------------- methods
Method = Callable[["ScoreFunction", torch.Tensor, int], tuple[tuple[torch.Tensor, ...], torch.Tensor | None]]
METHODS: Registry[Method] = Registry("attribution method")


@METHODS.register("ig")
def integrated_gradients(
    score: ScoreFunction, target: torch.Tensor, steps: int
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor | None]:
    from captum.attr import IntegratedGradients

    attributions, delta = IntegratedGradients(score).attribute(
        score.continuous(),
        baselines=score.baselines(),
        target=target,
        additional_forward_args=score.integer_inputs(),
        n_steps=steps,
        internal_batch_size=max(len(target), 1) * min(steps, 64),
        return_convergence_delta=True,
    )
    return tuple(attributions), delta


@METHODS.register("saliency")
def saliency(score: ScoreFunction, target: torch.Tensor, steps: int) -> tuple[tuple[torch.Tensor, ...], None]:
    from captum.attr import Saliency

    inputs = tuple(t.clone().requires_grad_(True) for t in score.continuous())
    attributions = Saliency(score).attribute(inputs, target=target, additional_forward_args=score.integer_inputs())
    return tuple(attributions), None


@METHODS.register("occlusion")
def occlusion(score: ScoreFunction, target: torch.Tensor, steps: int) -> tuple[tuple[torch.Tensor, ...], None]:
    from captum.attr import Occlusion

    inputs = score.continuous()
    shapes = [_occlusion_window(name, tensor, score) for name, tensor in zip(score.names, inputs, strict=True)]
    windows, strides = zip(*shapes, strict=True)
    with torch.no_grad():
        attributions = Occlusion(score).attribute(
            inputs,
            sliding_window_shapes=tuple(windows),
            strides=tuple(strides),
            baselines=score.baselines(),
            target=target,
            additional_forward_args=score.integer_inputs(),
            perturbations_per_eval=8,
        )
    return tuple(attributions), None


def _occlusion_window(name: str, tensor: torch.Tensor, score: ScoreFunction) -> tuple[tuple[int, ...], tuple[int, ...]]:
    shape = tuple(tensor.shape[1:])
    if name == "numeric":
        return (1,), (1,)
    if name in score.embeddings:  # a whole embedding vector (a category value, or one token)
        return shape if len(shape) == 1 else (1, shape[-1]), shape if len(shape) == 1 else (1, shape[-1])
    # image / audio: C × H × W patches of about an eighth of each side
    patch = tuple(max(1, s // 8) for s in shape[1:])
    return (shape[0], *patch), (shape[0], *patch)


# ----------------------------------------------------------------------------- entry point
def explain_frame(
    run: Any,
    frame: pd.DataFrame,
    rows: list[int] | None = None,
    method: str = "ig",
    steps: int = 64,
    explained_class: Any = None,
) -> list[RowExplanation]:
    """Attributions for the chosen rows (default: all) of a frame of the run's inputs."""
    TASKS.get(run.task).require("explain")
    attribute = METHODS.get(method)
    rows = list(range(len(frame))) if rows is None else rows
    bad = [r for r in rows if not 0 <= r < len(frame)]
    if bad:
        raise ModelforgeError(f"--rows: row {bad[0]} is out of range (the data has {len(frame)} rows, from 0)")
    selected = frame.iloc[rows].reset_index(drop=True)
    arrays = run.preprocessor.transform_inputs(selected)
    inputs = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
    model = run.model.float().eval()
    matched = match_embeddings(model, inputs, run.preprocessor.input_spec())
    embeddings = {_embedding_key(k, run.preprocessor): m for k, m in matched.items()}
    names = [k for k, v in inputs.items() if v.dtype.is_floating_point]
    names += sorted(embeddings, key=_input_order(run.preprocessor))
    target_scale = float(run.preprocessor.target_encoder.std_) if predicts_values(run.task) else 1.0
    score = ScoreFunction(
        model, inputs, embeddings, names, output_transform(run.task, run.model_info["output_dim"], target_scale)
    )
    with torch.no_grad():
        scores = score(*score.continuous(), *score.integer_inputs())
        baseline_scores = score(*score.baselines(), *score.integer_inputs())
    target = _explained_targets(run, scores, explained_class)
    attributions, delta = attribute(score, target, steps)
    return [
        _row_explanation(run, selected, i, rows[i], names, attributions, scores, baseline_scores, target, delta)
        for i in range(len(rows))
    ]


def _embedding_key(key: str, preprocessor: Any) -> str:
    """'category:2' → 'category:<column name>'; 'text' stays."""
    if key.startswith("category:"):
        names = [e.name for e in preprocessor.encoders if e.kind == "category"]
        return f"category:{names[int(key.split(':')[1])]}"
    return key


def _input_order(preprocessor: Any) -> Callable[[str], int]:
    order = {f"category:{e.name}": i for i, e in enumerate(preprocessor.encoders)}
    return lambda key: order.get(key, len(order))


def _explained_targets(run: Any, scores: torch.Tensor, explained_class: Any) -> torch.Tensor:
    if predicts_values(run.task):
        return torch.zeros(len(scores), dtype=torch.long)
    if explained_class is None:
        return scores.argmax(dim=1)
    classes = [str(c) for c in run.preprocessor.classes]
    if str(explained_class) not in classes:
        raise ModelforgeError(f"--target-class: {explained_class!r} is not a class; classes: {classes}")
    return torch.full((len(scores),), classes.index(str(explained_class)), dtype=torch.long)


def _row_explanation(
    run: Any,
    frame: pd.DataFrame,
    i: int,
    row: int,
    names: list[str],
    attributions: tuple[torch.Tensor, ...],
    scores: torch.Tensor,
    baseline_scores: torch.Tensor,
    target: torch.Tensor,
    delta: torch.Tensor | None,
) -> RowExplanation:
    k = int(target[i])
    if predicts_values(run.task):
        explained, predicted = None, float(scores[i, 0]) + float(run.preprocessor.target_encoder.mean_)
    else:
        classes = run.preprocessor.classes
        explained, predicted = str(classes[k]), str(classes[int(scores[i].argmax())])
    explanation = RowExplanation(
        row=row,
        explained_class=explained,
        predicted=predicted,
        score=float(scores[i, k]),
        baseline_score=float(baseline_scores[i, k]),
        delta=None if delta is None else float(delta[i]),
    )
    numeric_names = [e.name for e in run.preprocessor.encoders if e.kind == "numeric"]
    for name, values in zip(names, attributions, strict=True):
        values = values[i].detach().double()
        if name == "numeric":
            explanation.features.update(zip(numeric_names, values.tolist(), strict=True))
        elif name.startswith("category:"):
            explanation.features[name.split(":", 1)[1]] = float(values.sum())
        elif name == "text":
            per_token = values.sum(dim=-1).numpy()
            encoder = next(e for e in run.preprocessor.encoders if e.kind == "text")
            words = encoder.tokens(str(frame[encoder.name].iloc[i]))
            explanation.tokens = words
            explanation.token_scores = [float(s) for s in per_token[: len(words)]]
            explanation.padding = float(per_token[len(words) :].sum())
        else:
            explanation.maps[name] = values.sum(dim=0).numpy() if values.ndim == 3 else values.numpy()
    return explanation


def global_importance(explanations: list[RowExplanation]) -> dict[str, float]:
    """Mean |attribution| per tabular column over rows, largest first."""
    totals: dict[str, list[float]] = {}
    for explanation in explanations:
        for name, value in explanation.features.items():
            totals.setdefault(name, []).append(abs(value))
    means = {name: float(np.mean(values)) for name, values in totals.items()}
    return dict(sorted(means.items(), key=lambda item: -item[1]))


# ----------------------------------------------------------------------------- attention
def attention_maps(model: nn.Module, inputs: Tensors) -> list[np.ndarray]:
    """Self-attention weights of every nn.MultiheadAttention, in call order: layer → N×heads×L×L."""
    captured: list[np.ndarray] = []

    def ask_for_weights(_module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        return args, {**kwargs, "need_weights": True, "average_attn_weights": False}

    def keep_weights(_module: nn.Module, _args: tuple, _kwargs: dict, output: Any) -> None:
        if isinstance(output, tuple) and output[1] is not None:
            captured.append(output[1].detach().float().numpy())

    hooks = []
    for module in model.modules():
        if isinstance(module, nn.MultiheadAttention):
            hooks.append(module.register_forward_pre_hook(ask_for_weights, with_kwargs=True))
            hooks.append(module.register_forward_hook(keep_weights, with_kwargs=True))
    try:
        # with gradients on, PyTorch skips its fused fast path, so the attention module is really called
        with torch.enable_grad():
            model.eval()(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return captured


def has_attention(model: nn.Module) -> bool:
    return any(isinstance(m, nn.MultiheadAttention) for m in model.modules())
