"""The task registry: one entry per task, the only place that knows which tasks exist.

A task names its recipe (config → finished run directory), its run loader, its server service and
endpoint, its headline and key metrics, the verbs it supports, and the config it reads: which
sections, which `data.*` and `train.*` keys. Everything else asks the registry (`TASKS.get(name)`,
`task_of_run(path)`) instead of comparing task names. Entries name their code as "module:function"
strings so that `modelforge --help` imports no torch.

Adding a task: write its package (recipe, run loader, service), then one `register_task(Task(...))`
below. The matrix test in tests/core/test_tasks.py then runs every verb the task claims.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelforge.errors import ConfigError, ModelforgeError, RunError
from modelforge.files import read_yaml_file
from modelforge.registry import Registry

# verbs that act on a finished run (train, audit and `runs` apply to every task)
RUN_VERBS = (
    "evaluate",
    "predict",
    "serve",
    "export",
    "explain",
    "report",
    "tune",
    "compress",
    "distill",
    "benchmark",
    "generate",
    "resume",
)
# top-level config sections every task reads; the others are listed per task in `sections`
COMMON_SECTIONS = frozenset({"task", "seed", "name", "data", "model", "train", "card"})


class UnsupportedVerb(ModelforgeError):
    """A verb asked of a run whose task does not support it."""


def load_entry(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Task:
    """What modelforge knows about one task; see the module docstring."""

    name: str
    summary: str
    recipe: str  # "module:function"(config, out, *, show_progress, resume, force) -> finished run
    loader: str  # "module:function"(path) -> loaded run
    service: str  # "module:function"(spec, engine, threads) -> a serve service
    endpoint: str  # the serve route of its runs: predict | generate | images
    headline: tuple[str, ...]  # metrics printed after train and by evaluate
    key_metrics: tuple[str, ...]  # `modelforge runs` shows the first of these that a run has
    verbs: frozenset[str]
    data_keys: frozenset[str]  # data.* keys it reads
    train_keys: frozenset[str]  # train.* keys it reads
    sections: frozenset[str] = frozenset()  # optional top-level sections it reads (features, tune, ...)
    train_defaults: dict[str, Any] = field(default_factory=dict)  # train.* defaults of its own
    train_choices: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # train.* keys read with fewer values
    default_model: str = "mlp"  # model.type when the config names none
    models: tuple[str, ...] = ()  # the only model types it takes; () = any model no other task claims
    model_keys: frozenset[str] = frozenset()  # model.* keys it reads beside the model type's own options
    target_kind: str | None = None  # "label", "labels" (a set per row) or "value": a target column per row
    epoch_metrics: tuple[str, ...] = ()  # per-epoch metrics `tune` may optimize
    report: str = "modelforge.evaluate.report:supervised_report"  # "module:function"(run_dir, **options) -> html
    generate: str | None = None  # "module:function" behind `modelforge generate RUN` (options as the verb's)
    # "module:function"(run_dir, data, rows, method, out, **options) -> (folder, explanations, lines), for explain
    explain: str = "modelforge.evaluate.explain_output:explain_to_folder"
    compress: str = "modelforge.compress.recipe:compress_run"  # "module:function"(run_dir, out, options) -> out
    quantize_kinds: tuple[str, ...] = ("int8-dynamic", "int8-static")  # `compress --quantize` values it takes
    compress_prunes: bool = True  # whether its compressor takes --prune and --finetune-epochs
    export_formats: tuple[str, ...] = ()  # `modelforge export --format` values its runs take
    onnx_export: str | None = None  # "module:function"(run_dir, dest) -> Parity, for --format onnx
    # "module:function"(run_dir, threads) -> predictor (`.run`, `.predict(data)`), for predict --engine onnx
    onnx_predictor: str = "modelforge.export.onnx:load_onnx_predictor"
    # what `init` with no --task starts this task from: a file suffix (".txt") or a file a data folder holds
    starter_markers: tuple[str, ...] = ()
    starter: str | None = None  # "module:function"(data, out[, target]) -> config dict, for `modelforge init --task`
    parallel_files: bool = False  # reads data.train/valid/test given as {source, target} line-aligned files
    # "module:function"(path) -> bool: whether `init` with no --task starts this task from that data (light imports)
    recognizes: str | None = None
    # "module:function"(run_dir, data, out, **options) -> text: a predict verb of its own (not rows of a table)
    predict: str | None = None
    # "module:function"(run) -> modelforge.inference.Workload: what `benchmark` times for runs whose requests
    # are not rows of a table (one request, a batch of 64), on the run's module or, for --engine onnx, on
    # the run from `onnx_run`; None: held-out rows through the model's forward (modelforge.compress.benchmark)
    benchmark: str | None = None
    # "module:function"(run_dir, threads) -> the run with its exported model.onnx standing in for its module
    onnx_run: str | None = None

    def supports(self, verb: str) -> bool:
        return verb in self.verbs

    def require(self, verb: str, what: str = "") -> None:
        """UnsupportedVerb in one line when the task does not support `verb`."""
        if verb not in self.verbs:
            subject = f"{what}: " if what else ""
            supported = ", ".join(v for v in RUN_VERBS if v in self.verbs) or "none"
            raise UnsupportedVerb(f"{subject}{verb} does not support task {self.name} (it supports: {supported})")

    def train(self, config: Any, out: str | Path | None, **options: Any) -> Any:
        if options.get("resume") is not None:
            self.require("resume", "train with resume")
        return load_entry(self.recipe)(config, out, **options)

    def load_run(self, path: Path) -> Any:
        return load_entry(self.loader)(path)

    def load_service(self, *args: Any) -> Any:
        return load_entry(self.service)(*args)

    def call(self, verb: str, entry: str | None, *args: Any, **options: Any) -> Any:
        """Run one of the task's "module:function" entries for `verb` (refused when the task has none)."""
        self.require(verb)
        assert entry is not None, f"task {self.name} claims {verb} without an entry for it"
        return load_entry(entry)(*args, **options)

    def check_config(self, config: Any) -> list[str]:
        """Problems with what a validated RunConfig gives that this task does not read (one line each):
        sections, `data.*` and `train.*` keys, and train values outside the task's choices."""
        given = {name for name in config.model_fields_set if getattr(config, name) is not None}
        problems = [
            f"{section}: not used by task {self.name}" for section in sorted(given - COMMON_SECTIONS - self.sections)
        ]
        for section, reads in (("data", self.data_keys), ("train", self.train_keys)):
            for key in sorted(getattr(config, section).model_fields_set - reads):
                problems.append(f"{section}.{key}: not used by task {self.name} (reads {', '.join(sorted(reads))})")
        if config.data.split.column is not None and "split.column" not in self.data_keys:
            problems.append(
                f"data.split.column: not used by task {self.name}; give held-out rows as data.valid / data.test "
                "files or as data.split.valid / data.split.test shares"
            )
        if not self.parallel_files:
            for key in ("train", "valid", "test"):
                if hasattr(getattr(config.data, key), "source"):
                    problems.append(f"data.{key}: {{source, target}} files are read by seq2seq tasks, not {self.name}")
        for key, allowed in self.train_choices.items():
            value = getattr(config.train, key)
            if key in config.train.model_fields_set and value not in allowed:
                problems.append(f"train.{key}: task {self.name} supports {', '.join(allowed)}, got {value!r}")
        return problems


TASKS: Registry[Task] = Registry("task")


def keys(names: str) -> frozenset[str]:
    """A set of config keys or verbs written as one space-separated string."""
    return frozenset(names.split())


def register_task(task: Task) -> Task:
    TASKS.add(task.name, task)
    return task


def task_for_file(path: Path, target: str | None = None) -> str | None:
    """The task `init` starts from this data with no --task: a .txt corpus is language modeling, a folder
    holding u.data (MovieLens) recommendation, COCO annotation JSON or a YOLO folder detection, a table of
    WAV paths whose target is free text speech recognition; None for other tables and image folders
    (inferred from the target). A `recognizes` entry taking `target` is given --target."""

    def marked(marker: str) -> bool:
        if marker.startswith("."):
            return path.is_file() and path.suffix.lower() == marker
        return path.is_dir() and (path / marker).is_file()

    def recognized(task: Task) -> bool:
        if any(marked(m) for m in task.starter_markers):
            return True
        if not (task.recognizes and path.exists()):
            return False
        entry = load_entry(task.recognizes)
        options = {"target": target} if "target" in inspect.signature(entry).parameters else {}
        return bool(entry(path, **options))

    return next((name for name in TASKS.names() if recognized(TASKS.get(name))), None)


def predicts_values(task: str) -> bool:
    """Whether the task predicts a number per row (regression-like: rmse, no classes)."""
    return TASKS.get(task).target_kind == "value"


def predicts_labels(task: str) -> bool:
    """Whether the task predicts a class per row (classification-like: probabilities, accuracy)."""
    return TASKS.get(task).target_kind == "label"


def predicts_label_sets(task: str) -> bool:
    """Whether the task predicts a set of labels per row (multi-label: one sigmoid per label)."""
    return TASKS.get(task).target_kind == "labels"


def task_named(name: str) -> Task:
    """The registered task; a ConfigError with close matches for an unknown name."""
    try:
        return TASKS.get(name)
    except ModelforgeError as exc:
        raise ConfigError(f"task: {exc}") from None


def recorded_task_name(path: Path) -> str:
    """The task in a run directory's config.yaml, read without loading anything else."""
    if not path.is_dir():
        raise RunError(f"{path}: run directory not found")
    config_path = path / "config.yaml"
    if not config_path.is_file():
        raise RunError(f"{path}: not a run directory (no config.yaml)")
    raw = read_yaml_file(config_path, RunError)
    if not isinstance(raw, dict):
        raise RunError(f"{config_path}: not a run config")
    return str(raw.get("task", "classification"))


def task_of_run(path: str | Path, verb: str | None = None) -> Task:
    """The task of a run directory; with `verb`, refuses in one line when the task does not support it."""
    path = Path(path)
    name = recorded_task_name(path)
    if name not in TASKS:
        raise RunError(f"{path}: task {name!r} is not known to this modelforge (known: {', '.join(TASKS.names())})")
    task = TASKS.get(name)
    if verb is not None:
        task.require(verb, str(path))
    return task


# ----------------------------------------------------------------------------- the tasks
# "split.column": the task reads data.split.column (a column naming each row's split) beside the shares
_TABLE_DATA = frozenset({"train", "valid", "test", "target", "split", "split.column", "bad_rows", "drop", "hash"})
_SUPERVISED_TRAIN = keys(
    "epochs max_steps batch_size lr min_lr optimizer momentum nesterov betas weight_decay l1 loss "
    "label_smoothing mixup schedule warmup_steps step_size gamma grad_clip grad_accum bucket_by_length "
    "precision class_weights early_stopping keep_best average_from checkpoint_every keep_checkpoints "
    "checkpoint_budget compile threads device strategy on_nonfinite freeze"
)
_SUPERVISED_VERBS = frozenset(RUN_VERBS) - {"generate"}
_SUPERVISED_MODEL = frozenset({"members"})  # an ensemble of the model (models/ensemble.py)

for _name, _summary, _headline, _keys, _kind, _epoch, _sections, _train in (
    (
        "classification",
        "a label per row of a table, image, text or audio clip",
        ("accuracy", "f1", "roc_auc"),
        ("accuracy",),
        "label",
        ("valid_loss", "valid_accuracy", "train_loss"),
        {"decision", "calibrate"},  # a threshold and calibration tuned on the validation split
        {"sampling"},  # class-balanced batches
    ),
    (
        "regression",
        "a number per row of a table, image, text or audio clip",
        ("rmse", "mae", "r2"),
        ("r2",),
        "value",
        ("valid_loss", "valid_rmse", "valid_r2", "train_loss"),
        set(),
        set(),
    ),
):
    register_task(
        Task(
            name=_name,
            summary=_summary,
            recipe="modelforge.training.recipe:train",
            loader="modelforge.run:load_supervised_run",
            service="modelforge.serve.services:load_predict_service",
            endpoint="predict",
            headline=_headline,
            key_metrics=_keys,
            verbs=_SUPERVISED_VERBS,
            data_keys=_TABLE_DATA,
            train_keys=_SUPERVISED_TRAIN | _train,
            model_keys=_SUPERVISED_MODEL,
            sections=frozenset({"features", "init_from", "tune", *_sections}),
            target_kind=_kind,
            export_formats=("onnx", "torchscript", "bundle"),
            onnx_export="modelforge.export.onnx:export_supervised_run",
            epoch_metrics=_epoch,
        )
    )

register_task(
    Task(
        name="multilabel",
        summary="a set of labels per row of a table or text (a JSONL list, or labels joined by a vertical bar)",
        recipe="modelforge.training.recipe:train",
        loader="modelforge.run:load_supervised_run",
        service="modelforge.serve.services:load_predict_service",
        endpoint="predict",
        headline=("micro_f1", "macro_f1", "subset_accuracy"),
        key_metrics=("micro_f1",),
        verbs=frozenset({"evaluate", "predict", "serve", "report", "resume"}),
        data_keys=_TABLE_DATA,
        train_keys=_SUPERVISED_TRAIN - {"class_weights", "loss", "label_smoothing"},
        model_keys=_SUPERVISED_MODEL,
        sections=frozenset({"features", "init_from", "decision"}),  # decision: one threshold per label
        target_kind="labels",
        epoch_metrics=("valid_loss", "valid_micro_f1", "train_loss"),
        report="modelforge.evaluate.report:summary_report",
    )
)

register_task(
    Task(
        name="language-modeling",
        summary="next-token prediction on a text corpus (a GPT), and text generation",
        recipe="modelforge.training.lm:train_language_model",
        loader="modelforge.text.run:load_language_model_run",
        service="modelforge.serve.services:load_generate_service",
        endpoint="generate",
        headline=("val_loss", "perplexity", "tokens_per_second"),
        key_metrics=("val_loss",),
        verbs=frozenset({"evaluate", "serve", "export", "report", "generate", "resume", "benchmark"}),
        data_keys=frozenset({"train", "valid", "tokenizer", "vocab_size", "valid_fraction", "text_column"}),
        train_keys=keys(
            "epochs max_steps batch_size lr min_lr betas weight_decay schedule warmup_steps grad_clip "
            "grad_accum precision eval_every eval_batches checkpoint_every keep_checkpoints "
            "checkpoint_budget compile threads device strategy on_nonfinite optimizer"
        ),
        train_defaults={"schedule": "cosine", "optimizer": "adamw"},
        train_choices={"schedule": ("cosine", "constant"), "optimizer": ("adamw",)},
        default_model="gpt",
        models=("gpt",),
        export_formats=("onnx", "hf"),  # hf: learned-position runs only (model.rope: false)
        onnx_export="modelforge.export.graphs:export_language_model_run",
        benchmark="modelforge.text.benchmark:language_model_workload",
        onnx_run="modelforge.export.gpt_onnx:load_onnx_language_model_run",
        report="modelforge.evaluate.report:language_model_report",
        generate="modelforge.text.cli:generate_text",
        starter="modelforge.text.init:language_model_config",
        starter_markers=(".txt", ".text", ".md"),
        recognizes="modelforge.text.data:recognizes_corpus_folder",
    )
)

register_task(
    Task(
        name="recommendation",
        summary="users × items: ratings (explicit) or ranked items (implicit)",
        recipe="modelforge.training.recommend:train_recommender",
        loader="modelforge.training.recommend:load_recommender_run",
        service="modelforge.serve.services:load_recommend_service",
        endpoint="predict",
        headline=("rmse", "baseline_global_mean_rmse"),  # the run's own headline adds ranking metrics
        key_metrics=("rmse", "ndcg@"),
        verbs=frozenset({"evaluate", "predict", "serve", "export", "report", "resume", "benchmark"}),
        data_keys=frozenset({"train", "bad_rows"}),
        # weight_decay is the L2 on the embedding rows a batch touches, not the optimizer's decay
        train_keys=keys(
            "epochs batch_size lr min_lr optimizer momentum nesterov betas weight_decay schedule "
            "warmup_steps step_size gamma grad_clip keep_best checkpoint_every keep_checkpoints "
            "checkpoint_budget threads"
        ),
        sections=frozenset({"recommend"}),
        default_model="mf",
        models=("mf", "two_tower"),
        export_formats=("onnx",),
        onnx_export="modelforge.export.graphs:export_recommender_run",
        onnx_predictor="modelforge.export.graphs:load_onnx_recommender",
        benchmark="modelforge.training.recommend_benchmark:recommender_workload",
        onnx_run="modelforge.export.graphs:load_onnx_recommender_run",
        starter="modelforge.training.recommend_init:recommendation_config",
        starter_markers=("u.data",),
        recognizes="modelforge.training.recommend_init:recognizes_interactions",
        report="modelforge.evaluate.report:summary_report",
    )
)

register_task(
    Task(
        name="generation",
        summary="image generators (VAE, GAN) trained per class, sampled and scored",
        recipe="modelforge.generation.recipe:train_generator",
        loader="modelforge.generation.run:load_generator_run",
        service="modelforge.serve.services:load_image_service",
        endpoint="images",
        # eval.json: the VAE's test_* negative ELBO; with generation.classifier, the sample scores (VAE and GAN)
        headline=(
            "test_loss",
            "test_reconstruction",
            "test_kl",
            "mean_confidence",
            "classes_covered",
            "label_agreement",
            "frechet_distance",
        ),
        key_metrics=("frechet_distance", "test_loss"),
        verbs=frozenset({"evaluate", "serve", "export", "report", "generate", "resume", "benchmark"}),
        data_keys=frozenset({"train", "target", "split", "bad_rows"}),
        train_keys=keys(
            "epochs batch_size lr optimizer momentum nesterov betas weight_decay keep_best "
            "checkpoint_every keep_checkpoints checkpoint_budget threads"
        ),
        sections=frozenset({"generation"}),
        report="modelforge.evaluate.report:summary_report",
        default_model="vae",
        models=("vae", "gan"),
        export_formats=("onnx",),
        onnx_export="modelforge.export.graphs:export_generator_run",
        benchmark="modelforge.generation.benchmark:generator_workload",
        onnx_run="modelforge.export.graphs:load_onnx_generator_run",
        generate="modelforge.generation.cli:generate_images",
    )
)

register_task(
    Task(
        name="seq2seq",
        summary="text to text: translation, grapheme-to-phoneme (an encoder-decoder transformer)",
        recipe="modelforge.seq2seq.recipe:train_seq2seq",
        loader="modelforge.seq2seq.run:load_seq2seq_run",
        service="modelforge.seq2seq.service:load_seq2seq_service",
        endpoint="predict",
        headline=("bleu", "chrf", "cer", "wer", "exact_match"),
        key_metrics=("bleu",),
        verbs=frozenset(
            {"evaluate", "predict", "serve", "report", "generate", "resume", "tune", "explain", "compress", "export"}
        ),
        data_keys=frozenset({"train", "valid", "test", "target", "source", "split", "split.column", "bad_rows"}),
        train_keys=keys(
            "epochs max_steps batch_size lr min_lr optimizer momentum nesterov betas weight_decay label_smoothing "
            "schedule warmup_steps step_size gamma grad_clip keep_best checkpoint_every keep_checkpoints "
            "checkpoint_budget threads precision"
        ),
        sections=frozenset({"seq2seq", "tune"}),
        train_defaults={"optimizer": "adamw", "schedule": "cosine", "label_smoothing": 0.1, "grad_clip": 1.0},
        default_model="seq2seq_transformer",
        models=("seq2seq_transformer",),
        epoch_metrics=("valid_bleu", "valid_loss", "train_loss"),
        report="modelforge.seq2seq.report:seq2seq_report",
        generate="modelforge.seq2seq.cli:generate_translation",
        explain="modelforge.seq2seq.explain:explain_translations",
        compress="modelforge.seq2seq.compress:compress_seq2seq",
        quantize_kinds=("int8-dynamic",),
        compress_prunes=False,
        export_formats=("onnx",),
        onnx_export="modelforge.seq2seq.onnx:export_seq2seq_run",
        onnx_predictor="modelforge.seq2seq.onnx:load_onnx_translator",
        starter="modelforge.seq2seq.init:seq2seq_config",
        recognizes="modelforge.seq2seq.init:recognizes_text_pairs",
        parallel_files=True,
    )
)

register_task(
    Task(
        name="detection",
        summary="boxes and labels of the objects in an image (COCO JSON or YOLO folders; mAP by pycocotools)",
        recipe="modelforge.detection.recipe:train_detector",
        loader="modelforge.detection.run:load_detector_run",
        service="modelforge.detection.service:load_detection_service",
        endpoint="predict",
        headline=("map", "map50", "map75"),
        key_metrics=("map",),
        verbs=frozenset({"evaluate", "predict", "serve", "report", "resume", "tune", "compress", "export"}),
        data_keys=frozenset({"train", "valid", "test", "split"}),
        train_keys=keys(
            "epochs max_steps batch_size lr min_lr optimizer momentum nesterov betas weight_decay schedule "
            "warmup_steps step_size gamma grad_clip keep_best checkpoint_every keep_checkpoints checkpoint_budget "
            "threads precision"
        ),
        sections=frozenset({"detection", "tune"}),
        train_defaults={"optimizer": "adamw", "schedule": "cosine", "grad_clip": 10.0},
        default_model="detector",
        models=("detector",),
        epoch_metrics=("valid_map", "valid_map50", "train_loss"),
        report="modelforge.detection.report:detection_report",
        compress="modelforge.detection.compress:compress_detector",
        quantize_kinds=("int8-static",),  # convolutions: dynamic int8 would leave them float
        compress_prunes=False,
        export_formats=("onnx",),
        onnx_export="modelforge.detection.export:export_detector_run",
        starter="modelforge.detection.init:detection_config",
        recognizes="modelforge.detection.data:recognizes_detection_data",
        predict="modelforge.detection.run:write_boxes",
    )
)

register_task(
    Task(
        name="speech-recognition",
        summary="audio in, text out: a transcript per WAV clip (log-mel frames, a CTC-trained recurrent model)",
        recipe="modelforge.speech.recipe:train_speech",
        loader="modelforge.speech.run:load_speech_run",
        service="modelforge.speech.service:load_speech_service",
        endpoint="predict",
        headline=("wer", "cer"),
        key_metrics=("cer",),
        verbs=frozenset({"evaluate", "predict", "serve", "report", "resume", "tune", "compress"}),
        data_keys=frozenset({"train", "valid", "test", "target", "source", "split", "split.column", "bad_rows"}),
        train_keys=keys(
            "epochs max_steps batch_size lr min_lr optimizer momentum nesterov betas weight_decay schedule "
            "warmup_steps step_size gamma grad_clip keep_best average_from mixup checkpoint_every keep_checkpoints "
            "checkpoint_budget threads precision"
        ),
        sections=frozenset({"speech", "tune"}),
        report="modelforge.evaluate.report:summary_report",
        train_defaults={"optimizer": "adamw", "schedule": "cosine", "grad_clip": 5.0, "lr": 2.0e-3},
        default_model="ctc_rnn",
        models=("ctc_rnn",),
        epoch_metrics=("valid_cer", "valid_wer", "train_loss"),
        starter="modelforge.speech.init:speech_config",
        recognizes="modelforge.speech.data:recognizes_speech_table",
        predict="modelforge.speech.run:write_transcripts",
        compress="modelforge.speech.compress:compress_speech",
        quantize_kinds=("int8-dynamic",),  # the GRU and Linear layers; static int8 has no recurrent kernels
        compress_prunes=False,
    )
)
