"""What the server serves: one service per run directory, built from the run's own files.

A classification or regression run becomes a `PredictService` (records → validated rows →
batched forward pass → one answer per record); a recommendation run a `RecommendService` (user
records → top-K items, user-and-item records → a rating or score; batched the same way); a
language-model run (`task: language-modeling` in its config.yaml) a `GenerateService` around
`modelforge.text.generate.load_generator`; an image generation run an `ImageService` (sampled
images as PNG).
"""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from modelforge.errors import ModelforgeError
from modelforge.serve.records import (
    MAX_REPORTED_PROBLEMS,
    MAX_UNKNOWN_COLUMNS,
    SUPPORTED_KINDS,
    FieldProblem,
    RecordSchema,
    RecordsError,
    describe,
    short_name,
)
from modelforge.tasks import TASKS, predicts_label_sets, predicts_values, task_of_run

if TYPE_CHECKING:
    from modelforge.text.generate import Generator

ENGINES = ("torch", "eager", "onnx")  # torch: a frozen graph where the model allows one
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ServeError(ModelforgeError):
    """A run cannot be served as asked (unknown task, unsupported column kind, bad name)."""


@dataclass(frozen=True)
class ModelSpec:
    """`NAME=RUN_DIR`, or just `RUN_DIR` (the name is the folder's name)."""

    name: str
    path: Path

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        name, sep, path = text.partition("=")
        spec = cls(name, Path(path)) if sep else cls(Path(text).resolve().name, Path(text))
        if not _NAME.match(spec.name):
            raise ServeError(
                f"model name {spec.name!r}: use letters, digits, '.', '_' or '-' (at most 64); "
                "name it explicitly with NAME=RUN_DIR"
            )
        return spec


class Predictor(Protocol):
    engine: str  # what runs the forward pass, for /v1/models and the server's start-up lines

    def outputs(self, frame: Any) -> np.ndarray: ...


@dataclass
class TorchPredictor:
    """A run's torch model answering frames like `Run.outputs`, set up once for many small calls.

    `Run.outputs` puts the model in eval mode and enters no_grad on every call; for a one-row
    request that bookkeeping costs as much as a small CNN's forward pass, so the server does it
    once here and runs each pass under inference_mode. With `freeze`, the model runs as a frozen
    graph (`modelforge.export.frozen`: batch norm folded, channels-last convolutions; about 5×
    faster for a one-row CNN pass) when it can be frozen and reproduces the eager outputs;
    otherwise eagerly, and `engine` says why.
    """

    run: Any
    freeze: bool = True
    chunk_rows: int = 1024

    def __post_init__(self) -> None:
        import torch

        from modelforge.export.frozen import freeze_for_inference
        from modelforge.export.parity import ExportError
        from modelforge.inference import resolve_precision

        run = self.run
        run.model.eval()
        first = next(run.model.parameters(), None)
        self.device = first.device if first is not None else torch.device("cpu")
        self.precision = resolve_precision(run.config.train.precision, self.device)
        self.forward: Any = run.model
        self.engine = "torch eager"
        if self.freeze:
            try:
                frozen = freeze_for_inference(run.model, run.model_info, run.preprocessor.input_spec(), self.precision)
            except ExportError as exc:
                self.engine = f"torch eager (not frozen: {exc})"
            else:
                self.forward = frozen
                self.engine = f"torch frozen graph (max abs diff {frozen.parity.max_abs_diff:.1e} from eager)"

    def outputs(self, frame: Any) -> np.ndarray:
        import torch

        from modelforge.inference import autocast_context, outputs_to_predictions

        run, device = self.run, self.device
        inputs = {k: torch.from_numpy(v) for k, v in run.preprocessor.transform_inputs(frame).items()}
        rows = len(next(iter(inputs.values())))
        pieces = []
        with torch.inference_mode(), autocast_context(self.precision, device):
            for begin in range(0, rows, self.chunk_rows):
                chunk = {k: v[begin : begin + self.chunk_rows].to(device) for k, v in inputs.items()}
                pieces.append(self.forward(chunk).float().cpu())
        raw = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
        return outputs_to_predictions(raw, run.task, run.preprocessor)


# ----------------------------------------------------------------------------- predict
@dataclass(frozen=True)
class RecordColumns:
    """A batch's columns, read the way `Preprocessor.transform_inputs` reads a frame (`columns`, `[name]`).

    Building a pandas DataFrame for a one-row request costs ~0.3 ms, a fifth of the quickstart
    CNN's forward pass; the encoders only need each column as a Series.
    """

    series: dict[str, Any]

    @property
    def columns(self) -> list[str]:
        return list(self.series)

    def __getitem__(self, name: str) -> Any:
        return self.series[name]


@dataclass
class PredictService:
    """A classification/regression run answering batches of validated records."""

    name: str
    task: str
    path: Path
    predictor: Predictor
    schema: RecordSchema
    classes: list[Any]
    hashed_columns: list[str]
    features: list[dict[str, Any]]  # `describe_feature` of each column, in the schema's order
    decision: Any = None  # the run's modelforge.decision.Decision: calibration and threshold (classification)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "endpoint": TASKS.get(self.task).endpoint,
            "features": self.features,
            "classes": [str(c) for c in self.classes],
            "engine": self.predictor.engine,
        }

    @property
    def columns(self) -> frozenset[str]:
        """The keys a record may carry: the model's columns and the ones it ignores."""
        return frozenset(self.schema.features) | self.schema.ignored

    def validate(self, records: list[dict[str, Any]], k: int | None) -> list[dict[str, Any]]:
        """Cleaned records, or RecordsError naming each bad row and field."""
        if k is not None:
            raise RecordsError(
                [FieldProblem(None, "k", f"only recommendation runs take k; {self.name} is a {self.task} run")]
            )
        return self.schema.validate(records)

    def predict_batch(self, items: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
        """One forward pass over the records of several requests; answers split per request."""
        import pandas as pd

        from modelforge.data.preprocess import apply_column_policies

        records = [record for item in items for record in item]
        columns = {
            name: pd.Series([r[name] for r in records], dtype=np.float64 if kind == "numeric" else object)
            for name, kind in self.schema.features.items()
        }
        frame: Any = RecordColumns(columns)
        if self.hashed_columns:
            frame = apply_column_policies(pd.DataFrame(columns), [], self.hashed_columns)
        return split_answers(self._answers(self.predictor.outputs(frame)), items)

    def _answers(self, values: np.ndarray) -> list[dict[str, Any]]:
        if not np.isfinite(values).all():
            raise ValueError("the model's output is not a finite number for these records (extreme input values?)")
        if predicts_values(self.task):
            return [{"value": float(v)} for v in values]
        labels = [str(c) for c in self.classes]
        if predicts_label_sets(self.task):  # multilabel: every label passing its saved threshold
            return [
                {
                    "labels": [name for name, on in zip(labels, chosen, strict=True) if on],
                    "probabilities": dict(zip(labels, map(float, row), strict=True)),
                }
                for chosen, row in zip(self.decision.choose(values), values, strict=True)
            ]
        if self.decision is not None:  # the run's saved calibration and threshold
            values = self.decision.calibrated(values)
        best = values.argmax(axis=1) if self.decision is None else self.decision.choose(values)
        return [
            {"label": self.classes[int(k)], "probabilities": dict(zip(labels, map(float, row), strict=True))}
            for k, row in zip(best, values, strict=True)
        ]


def load_predict_service(spec: ModelSpec, engine: str = "torch", threads: int | None = None) -> PredictService:
    from modelforge.run import load_run

    if engine not in ENGINES:
        raise ServeError(f"--engine {engine!r}: expected one of {', '.join(ENGINES)}")
    run = load_run(spec.path)
    predictor: Predictor
    if engine == "onnx":
        from modelforge.export.onnx import load_onnx_predictor

        predictor = load_onnx_predictor(spec.path, threads)
    else:
        predictor = TorchPredictor(run, freeze=engine == "torch")
    preprocessor = run.preprocessor
    for encoder in preprocessor.encoders:
        if encoder.kind not in SUPPORTED_KINDS:
            raise ServeError(
                f"{spec.path}: column {encoder.name!r} is a {encoder.kind} feature, which the server cannot "
                f"take over HTTP yet (supported: {', '.join(SUPPORTED_KINDS)})"
            )
    data = run.config.data
    ignored = {c for c in [preprocessor.target, *data.drop] if c}
    hashed = [c for c in data.hash if c in preprocessor.feature_names]
    return PredictService(
        name=spec.name,
        task=run.task,
        path=spec.path,
        predictor=predictor,
        schema=RecordSchema.from_preprocessor(preprocessor, ignored),
        classes=preprocessor.classes,
        hashed_columns=hashed,
        features=[describe_feature(encoder, encoder.name in hashed) for encoder in preprocessor.encoders],
        decision=run.decision,
    )


def describe_feature(encoder: Any, hashed: bool) -> dict[str, Any]:
    """A column as `/v1/models` lists it: name, kind, a typical value from the fitted preprocessing
    (the median; the most frequent category), and for images the shape, pixel range and mean pixel the
    model was trained on (a page decoding a photo needs them to scale, and perhaps invert, its pixels).

    A hashed column has no example: the encoder only saw digests, and a digest sent back would be hashed again.
    """
    described: dict[str, Any] = {"name": encoder.name, "kind": encoder.kind}
    example = None if hashed else encoder.example()
    if example is not None:
        described["example"] = example
    if encoder.kind == "image":
        described["shape"] = [encoder.channels_, *encoder.size_]
        described["pixel_range"] = encoder.pixel_range()
        described["pixel_mean"] = sum(encoder.mean_) / len(encoder.mean_)
    return described


def split_answers(answers: list[dict[str, Any]], items: list[list[Any]]) -> list[list[dict[str, Any]]]:
    """The answers of a batch cut back into one list per request, in order."""
    out, begin = [], 0
    for item in items:
        out.append(answers[begin : begin + len(item)])
        begin += len(item)
    return out


# ----------------------------------------------------------------------------- recommend
@dataclass(frozen=True)
class Wanted:
    """One validated recommendation record: a user's top k items, or (with an item) one pair's value."""

    user: str
    item: str | None
    k: int


@dataclass
class RecommendService:
    """A recommendation run: `{user}` records get top-K unseen items, `{user, item}` records a value."""

    name: str
    path: Path
    run: Any  # modelforge.training.recommend.RecommenderRun

    task: str

    def describe(self) -> dict[str, Any]:
        settings = self.run.settings
        features = [{"name": settings.user, "kind": "user id"}, {"name": settings.item, "kind": "item id (optional)"}]
        return {
            "name": self.name,
            "task": self.task,
            "endpoint": TASKS.get(self.task).endpoint,
            "features": features,
            "classes": [],
        }

    @property
    def columns(self) -> frozenset[str]:
        """The keys a record may carry: user and item, and the rating and time columns of training rows."""
        settings = self.run.settings
        return frozenset(c for c in (settings.user, settings.item, settings.rating, settings.time) if c)

    def validate(self, records: list[dict[str, Any]], k: int | None) -> list[Wanted]:
        settings = self.run.settings
        known = self.columns
        problems: list[FieldProblem] = []
        wanted = []
        for row, record in enumerate(records):
            if not isinstance(record, dict):
                problems.append(FieldProblem(row, None, f"expected an object, got {type(record).__name__}"))
                continue
            for key in islice((key for key in record if key not in known), MAX_UNKNOWN_COLUMNS):
                problems.append(
                    FieldProblem(
                        row, short_name(key), f"unknown column; give {settings.user!r} (and {settings.item!r})"
                    )
                )
            if settings.user not in record:
                problems.append(FieldProblem(row, settings.user, "missing (user id)", "missing"))
                continue
            user, item = _identifier(record[settings.user]), _identifier(record.get(settings.item))
            if user is None:
                problems.append(
                    FieldProblem(
                        row,
                        settings.user,
                        f"expected a user id (string or integer), got {describe(record[settings.user])}",
                    )
                )
            if item is None and record.get(settings.item) is not None:
                problems.append(
                    FieldProblem(
                        row,
                        settings.item,
                        f"expected an item id (string, integer or null), got {describe(record[settings.item])}",
                    )
                )
            wanted.append(Wanted(user or "", item, k or settings.k))
            if len(problems) >= MAX_REPORTED_PROBLEMS:
                break
        if problems:
            raise RecordsError(problems[:MAX_REPORTED_PROBLEMS])
        return wanted

    def predict_batch(self, items: list[list[Wanted]]) -> list[list[dict[str, Any]]]:
        """Top-K lists for the user records and values for the pair records of several requests at once."""
        import pandas as pd

        records = [record for item in items for record in item]
        answers: list[dict[str, Any]] = [{} for _ in records]
        tops = [i for i, r in enumerate(records) if r.item is None]
        if tops:
            users = pd.Series([records[i].user for i in tops])
            for i, top in zip(tops, self.run.top_items(users, max(records[i].k for i in tops)), strict=True):
                best = top.items[: records[i].k]
                answers[i] = {
                    "items": [{"item": item, "score": _finite(score)} for item, score in best],
                    "cold_start": top.cold_start,
                }
        pairs = [i for i, r in enumerate(records) if r.item is not None]
        if pairs:
            settings = self.run.settings
            frame = pd.DataFrame(
                {settings.user: [records[i].user for i in pairs], settings.item: [records[i].item for i in pairs]}
            )
            values = self.run.predict_pairs(frame)
            column = "rating" if settings.feedback == "explicit" else "score"
            for i, value, cold in zip(pairs, values[column], values["cold_start"], strict=True):
                answers[i] = {"value": _finite(value), "cold_start": bool(cold)}
        return split_answers(answers, items)


def _identifier(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _finite(value: float) -> float | None:
    """JSON has no NaN: the popularity fallback's missing scores travel as null."""
    return float(value) if math.isfinite(value) else None


def load_recommend_service(spec: ModelSpec, engine: str = "torch", threads: int | None = None) -> RecommendService:
    from modelforge.training.recommend import load_recommender_run

    if engine == "onnx":  # the exported score(user, item) graph answers in place of the module
        from modelforge.export.graphs import load_onnx_recommender

        run = load_onnx_recommender(spec.path, threads).run
    else:
        run = load_recommender_run(spec.path)
    return RecommendService(spec.name, spec.path, run, str(run.config.task))


# ----------------------------------------------------------------------------- images
@dataclass
class ImageService:
    """An image generation run (GAN or VAE) answering with sampled images as PNG."""

    name: str
    path: Path
    run: Any  # modelforge.generation.run.GeneratorRun

    task: str

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "endpoint": TASKS.get(self.task).endpoint,
            "features": [],
            "classes": self.run.classes,
        }

    def sample(self, n: int, label: str | None, seed: int, temperature: float, grid: bool) -> dict[str, Any]:
        """`n` images (base64 PNG, one per class in turn unless `label` is given) and optionally their grid."""
        from modelforge.generation.run import grid_png, image_png

        images, asked = self.run.sample(n, label, seed, temperature)
        pictures = [
            {"label": name, "png": _base64(image_png(image))} for image, name in zip(images, asked, strict=True)
        ]
        tiled = None
        if grid:
            classes = len(self.run.classes)
            columns = classes if label is None and classes and n % classes == 0 else None
            tiled = _base64(grid_png(images, columns))
        return {"images": pictures, "grid": tiled}


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def load_image_service(spec: ModelSpec, engine: str = "torch", threads: int | None = None) -> ImageService:
    from modelforge.generation.run import load_generator_run

    if engine == "onnx":  # the exported decoder samples in place of the module
        from modelforge.export.graphs import load_onnx_generator_run

        run = load_onnx_generator_run(spec.path, threads)
    else:
        run = load_generator_run(spec.path)
    return ImageService(spec.name, spec.path, run, str(run.config.task))


# ----------------------------------------------------------------------------- generate
@dataclass
class GenerateService:
    """A language-model run streaming generated text (decoded by `modelforge.serve.streams`)."""

    name: str
    path: Path
    generator: Generator

    task: str
    engine: str = "torch eager, streams decoded together (continuous batching)"

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "endpoint": TASKS.get(self.task).endpoint,
            "features": [],
            "classes": [],
            "engine": self.engine,
        }


def load_generate_service(spec: ModelSpec, engine: str = "torch", threads: int | None = None) -> GenerateService:
    task = task_of_run(spec.path).name
    if engine == "onnx":  # the exported graph decodes, its KV cache passed in and out
        from modelforge.export.gpt_onnx import load_onnx_generator

        engine_line = "onnxruntime on model.onnx, one pass per stream and token"
        return GenerateService(spec.name, spec.path, load_onnx_generator(spec.path, threads), task, engine_line)
    from modelforge.text.generate import load_generator

    return GenerateService(spec.name, spec.path, load_generator(spec.path), task)


Service = PredictService | RecommendService | GenerateService | ImageService
BatchedService = PredictService | RecommendService  # answered through a DynamicBatcher


def load_services(texts: list[str], engine: str = "torch", threads: int | None = None) -> dict[str, Service]:
    """Parse `NAME=RUN_DIR` specs and load every run; names must be unique."""
    services: dict[str, Service] = {}
    for text in texts:
        spec = ModelSpec.parse(text)
        if spec.name in services:
            raise ServeError(f"model name {spec.name!r} is used twice; name them with NAME=RUN_DIR")
        task = task_of_run(spec.path, "serve")
        services[spec.name] = task.load_service(spec, engine, threads)
    return services
