"""The one configuration schema: YAML in, `--set a.b=v` overrides, errors explained by path.

Every section is a strict pydantic model (unknown keys are errors with a close-match hint).
Model options are checked against the chosen model's builder signature, so `model.hiden`
fails as loudly as `train.lrr`.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modelforge.datasets.catalog import DATASET_PREFIX, resolve_dataset_path
from modelforge.errors import ConfigError, did_you_mean
from modelforge.files import read_yaml_file

OPTIONAL_SECTIONS = (
    "features",
    "init_from",
    "tune",
    "recommend",
    "generation",
    "decision",
    "calibrate",
    "seq2seq",
    "detection",
    "speech",
)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# ----------------------------------------------------------------------------- data
class SplitConfig(Section):
    valid: float = Field(0.1, ge=0.0, lt=1.0, description="fraction of rows held out for validation")
    test: float = Field(0.1, ge=0.0, lt=1.0, description="fraction held out for test (0 with data.test)")
    seed: int | None = Field(None, description="split seed (defaults to the run seed)")
    stratify: bool = Field(True, description="keep class shares equal across splits")
    column: str | None = Field(
        None, description="column naming each row's split: train, valid (or validation, val, dev) or test"
    )


class ParallelFiles(Section):
    """seq2seq: two line-aligned text files, line N of `target` translating line N of `source`."""

    source: str = Field(..., description="source-language text file, one sentence a line")
    target: str = Field(..., description="target-language text file, line-aligned with source")


class DataConfig(Section):
    train: str | list[str] | ParallelFiles = Field(
        ..., description="training file(s): csv/parquet/jsonl/npz/txt, an image folder, or {source, target} files"
    )
    valid: str | ParallelFiles | None = Field(None, description="explicit validation file (else split from train)")
    test: str | ParallelFiles | None = Field(None, description="explicit test file (else split from train)")
    target: str | None = Field(None, description="target column (array name for .npz)")
    split: SplitConfig = SplitConfig()
    bad_rows: Literal["error", "skip"] = Field(
        "error", description="unreadable rows (ragged CSV, broken JSONL): fail naming the first, or skip and count them"
    )
    drop: list[str] = Field(default_factory=list, description="columns removed at load")
    hash: list[str] = Field(default_factory=list, description="columns replaced by a salted hash at load")
    # language modeling
    tokenizer: Literal["char", "bpe"] = Field("char", description="language modeling: tokenizer")
    vocab_size: int = Field(4096, gt=0, description="language modeling: BPE vocabulary size")
    valid_fraction: float = Field(0.1, gt=0.0, lt=1.0, description="language modeling: last share held out")
    text_column: str | None = Field(None, description="language modeling: text column of a table")
    source: str | None = Field(None, description="seq2seq: source text column (default: the other text column)")

    @field_validator("bad_rows", mode="before")
    @classmethod
    def _drop_is_skip(cls, value: Any) -> Any:
        # runs saved before `skip` replaced `drop` (and `drop` was the default) record `bad_rows: drop`
        return "skip" if value == "drop" else value


# ----------------------------------------------------------------------------- features
class NumericFeature(Section):
    name: str
    type: Literal["numeric"] = "numeric"
    impute: Literal["mean", "median", "zero"] = "median"
    normalize: Literal["standard", "minmax", "none"] = "standard"
    clip_outliers: float | None = Field(None, gt=0, description="clip at this many standard deviations")


class CategoryFeature(Section):
    name: str
    type: Literal["category"] = "category"
    min_count: int = Field(1, ge=1, description="rarer values go to the unknown bucket")
    max_categories: int = Field(10000, ge=1)
    embedding_dim: int | None = Field(None, ge=1, description="default: min(32, (cardinality + 1) // 2)")


class TextFeature(Section):
    name: str
    type: Literal["text"] = "text"
    tokenizer: Literal["word", "char", "hf"] = Field("word", description="hf: a pretrained encoder's tokenizer.json")
    tokenizer_path: str | None = Field(None, description="tokenizer hf: model folder (default: MiniLM-L6)")
    lowercase: bool = True
    max_length: int = Field(64, ge=1)
    vocab_size: int = Field(20000, ge=4)
    min_count: int = Field(1, ge=1)


class ImageAugment(Section):
    crop_padding: int = Field(0, ge=0, description="random crop after zero padding by this many pixels")
    hflip: bool = False
    rotate: float = Field(0.0, ge=0.0, le=180.0, description="random rotation, max degrees")


class ImageFeature(Section):
    name: str
    type: Literal["image"] = "image"
    size: tuple[int, int] | None = Field(None, description="resize to (height, width); default: first image")
    channels: Literal[1, 3] | None = Field(None, description="1 gray, 3 RGB; default: from data")
    augment: ImageAugment = ImageAugment()
    root: str | None = Field(None, description="folder relative image paths are read from (default: the data's folder)")


class AudioAugment(Section):
    shift: float = Field(0.0, ge=0.0, lt=1.0, description="random time shift, max share of the frames")
    noise: float = Field(0.0, ge=0.0, description="std of Gaussian noise added to the normalized spectrogram")
    warp: float = Field(0.0, ge=0.0, lt=0.5, description="random stretch of the band axis (vocal tract length)")
    stretch: float = Field(0.0, ge=0.0, lt=0.5, description="random stretch of the time axis (speaking rate)")
    freq_masks: int = Field(0, ge=0, description="SpecAugment: number of frequency masks")
    freq_mask_width: int = Field(4, ge=1, description="SpecAugment: max bands per frequency mask")
    time_masks: int = Field(0, ge=0, description="SpecAugment: number of time masks")
    time_mask_width: int = Field(8, ge=1, description="SpecAugment: max frames per time mask")
    # recording shifts on the waveform: each training clip is rendered `copies` times, a batch picks one per row
    copies: int = Field(4, ge=0, le=16, description="waveform-augmented renderings per training clip (0: none)")
    pad: float = Field(0.3, ge=0.0, description="seconds of silence or quiet noise, at most, added at each end")
    gain_db: float = Field(10.0, ge=0.0, le=40.0, description="random gain within ± this many dB")
    speed: float = Field(0.1, ge=0.0, lt=0.5, description="random speed (tempo and pitch) within 1 ± this")
    resample: float = Field(0.2, ge=0.0, le=1.0, description="probability of a round trip through a lower rate")
    band: float = Field(0.2, ge=0.0, le=1.0, description="probability of a telephone band or a low-pass")
    snr_db: float | None = Field(10.0, description="background noise at snr_db to snr_db+20 dB on half the copies")


class AudioFeature(Section):
    name: str
    type: Literal["audio"] = "audio"
    root: str | None = Field(None, description="folder relative WAV paths are read from (default: the data's folder)")
    sample_rate: int | None = Field(None, gt=0, description="resample to this rate in Hz (default: first file's)")
    duration: float | None = Field(
        None, gt=0, description="length: pad: seconds per clip, padded or cut (default: 95th pct)"
    )
    max_duration: float = Field(30.0, gt=0, description="a clip longer than this many seconds is refused")
    remove_dc: bool = Field(True, description="subtract each clip's mean (a microphone's DC offset) first")
    trim_db: float | None = Field(
        35.0,
        gt=0,
        description="trim leading/trailing audio quieter than this many dB below the clip's loudest; null keeps it",
    )
    length: Literal["stretch", "pad"] = Field(
        "stretch",
        description="stretch: each trimmed clip's spectrogram resampled to `frames`; pad: padded or cut to duration",
    )
    frames: int | None = Field(
        None, ge=4, description="length: stretch: frames per clip (default: 95th pct of the clips')"
    )
    representation: Literal["logmel", "mfcc"] = "logmel"
    n_mels: int = Field(40, ge=4)
    n_mfcc: int = Field(20, ge=2, description="mfcc: coefficients kept")
    window_ms: float = Field(25.0, gt=0)
    hop_ms: float = Field(10.0, gt=0)
    floor_db: float | None = Field(
        50.0,
        gt=0,
        description="log-mel floor this many dB below the clip's loudest band and frame (a recording's noise "
        "floor reads the same in every clip); null: a fixed floor",
    )
    normalize: Literal["band", "utterance"] = Field(
        "band", description="band: per-band mean/std fitted on train; utterance: also remove each clip's band mean"
    )
    gain: Literal["rms", "peak", "none"] = Field(
        "rms", description="rms: scale each trimmed clip to one loudness; peak: to peak 1; none: as recorded"
    )
    augment: AudioAugment = AudioAugment()

    @model_validator(mode="after")
    def _length_keys(self) -> AudioFeature:
        if self.length == "stretch" and self.duration is not None:
            raise ValueError("duration is read by length: pad; length: stretch takes frames")
        if self.length == "pad" and self.frames is not None:
            raise ValueError("frames is read by length: stretch; length: pad takes duration")
        return self


FeatureConfig = Annotated[
    NumericFeature | CategoryFeature | TextFeature | ImageFeature | AudioFeature, Field(discriminator="type")
]


# ----------------------------------------------------------------------------- model
class ModelConfig(BaseModel):
    """`type` picks a registered model; the other keys are that model's options."""

    model_config = ConfigDict(extra="allow")
    type: str = "mlp"

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


# ----------------------------------------------------------------------------- train
class EarlyStopping(Section):
    metric: str = Field("valid_loss", description="metric in metrics.jsonl to watch")
    patience: int = Field(5, ge=1)
    mode: Literal["min", "max"] | None = Field(None, description="default: min for losses, else max")


class TrainConfig(Section):
    epochs: int = Field(20, ge=1)
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps")
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0)
    min_lr: float = Field(0.0, ge=0, description="floor of the cosine schedule")
    optimizer: Literal["sgd", "adam", "adamw"] = "adamw"
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0)
    l1: float = Field(0.0, ge=0, description="L1 penalty on weights")
    loss: Literal["cross_entropy", "bce", "focal", "mse", "huber"] | None = Field(
        None, description="default by task; focal: cross-entropy scaled by (1 - p)^2, for rare classes"
    )
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    mixup: float = Field(
        0.0,
        ge=0,
        description="mixup α: blend pairs of rows (numeric, image, audio inputs) and their losses by λ ~ Beta(α, α)",
    )
    schedule: Literal["constant", "step", "cosine", "onecycle"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    step_size: int = Field(10, ge=1, description="step schedule: epochs between decays")
    gamma: float = Field(0.1, gt=0, description="step schedule: decay factor")
    grad_clip: float | None = Field(None, gt=0)
    grad_accum: int = Field(1, ge=1)
    bucket_by_length: bool = Field(True, description="text inputs: batches of rows of similar length (less padding)")
    precision: Literal["fp32", "bf16", "auto"] = Field(
        "auto", description="auto: bf16 when a probe of this model's training steps finds it faster on this machine"
    )
    class_weights: Literal["balanced"] | None = Field(
        None, description="balanced: each class's loss weighted by rows / (classes × its rows)"
    )
    sampling: Literal["oversample", "undersample"] | None = Field(
        None, description="classification: each epoch draws every class as often as the largest (over) or smallest"
    )
    early_stopping: EarlyStopping | None = None
    keep_best: bool = Field(True, description="end with the weights of the best validation epoch")
    average_from: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="stochastic weight averaging: from this share of the steps on, each epoch scores (and the run "
        "keeps) the mean of the weights after every step; holds up better on data unlike the training set",
    )
    eval_every: int | None = Field(None, ge=1, description="language modeling: steps between evals")
    eval_batches: int = Field(20, ge=1)
    checkpoint_every: int | None = Field(None, ge=1, description="steps between checkpoints")
    keep_checkpoints: int = Field(2, ge=1)
    checkpoint_budget: float = Field(
        0.05,
        ge=0,
        le=1,
        description="largest share of training time for epoch-end checkpoints (skipped while over it); "
        "1: every epoch, 0: only the last",
    )
    compile: bool | None = Field(None, description="torch.compile; default per device (LM: on for CUDA, off for CPU)")
    threads: Annotated[int, Field(ge=1)] | Literal["auto", "adaptive"] | None = Field(
        "auto",
        description="torch CPU threads; auto: one or all, whichever a probe finds faster before training; "
        "adaptive: re-measured every 100 steps as training runs (follows a shared machine's load, "
        "not bitwise reproducible); null: torch's default",
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    strategy: Literal["single", "ddp", "fsdp"] = "single"
    on_nonfinite: Literal["stop", "skip"] = Field(
        "stop", description="non-finite loss: stop naming the step and last checkpoint, or skip the batch"
    )
    freeze: list[str] = Field(default_factory=list, description="parameter name prefixes kept fixed in training")

    @model_validator(mode="after")
    def _average_unsharded(self) -> TrainConfig:
        if self.average_from is not None and self.strategy == "fsdp":
            raise ValueError("average_from keeps a whole copy of the weights; use strategy ddp or single with it")
        return self


# ----------------------------------------------------------------------------- tune
class SearchRange(Section):
    """One `tune.space` entry: exactly one of uniform / loguniform / int / choice."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, serialize_by_alias=True)
    uniform: tuple[float, float] | None = Field(None, description="float in [low, high]")
    loguniform: tuple[float, float] | None = Field(None, description="float in [low, high], sampled in log space")
    integer: tuple[int, int] | None = Field(None, alias="int", description="integer in [low, high]")
    choice: list[Any] | None = Field(None, description="one of these values (any YAML: numbers, strings, lists)")
    step: float | None = Field(None, gt=0, description="uniform/int: grid spacing")
    log: bool = Field(False, description="int: sample in log space")

    @model_validator(mode="after")
    def _one_kind_with_valid_range(self) -> SearchRange:
        kinds = [k for k in ("uniform", "loguniform", "int", "choice") if self.bounds_of(k) is not None]
        if len(kinds) != 1:
            raise ValueError("give exactly one of uniform, loguniform, int, choice")
        kind = kinds[0]
        if kind == "choice":
            if not self.choice:
                raise ValueError("choice needs at least one value")
        else:
            low, high = self.bounds_of(kind)  # type: ignore[misc]
            if not low < high:
                raise ValueError(f"{kind} needs [low, high] with low < high")
            if (kind == "loguniform" or self.log) and low <= 0:
                raise ValueError(f"{kind} in log space needs low > 0")
            if self.step is not None and self.step > high - low:
                raise ValueError(f"step {self.step} is wider than the range")
        if self.step is not None and kind not in ("uniform", "int"):
            raise ValueError("step applies to uniform and int only")
        if self.step is not None and kind == "int" and self.step != int(self.step):
            raise ValueError("int step must be a whole number")
        if self.log and kind != "int":
            raise ValueError("log applies to int only (use loguniform for floats)")
        if self.log and self.step not in (None, 1):
            raise ValueError("int with log: true cannot have a step")
        return self

    def bounds_of(self, kind: str) -> Any:
        return self.integer if kind == "int" else getattr(self, kind)


class TuneConfig(Section):
    space: dict[str, SearchRange] = Field(..., min_length=1, description="config path → range, e.g. train.lr")
    metric: str = Field("valid_loss", description="per-epoch validation metric the study optimizes")
    direction: Literal["minimize", "maximize"] | None = Field(
        None, description="default: minimize losses and error rates (rmse, mae, cer, wer), else maximize"
    )
    trials: int = Field(20, ge=1, description="total trials of the study (--trials overrides)")
    sampler: Literal["tpe", "random", "grid", "cmaes"] = Field("tpe", description="--sampler overrides")
    pruner: Literal["none", "median", "hyperband"] = Field("median", description="stop poor trials early")
    warmup_epochs: int = Field(2, ge=0, description="median pruner: epochs before a trial can be pruned")
    seed: int | None = Field(None, description="sampler seed (default: the run seed)")


# ----------------------------------------------------------------------------- decision
class DecisionCost(Section):
    false_positive: float = Field(..., ge=0, description="cost of flagging a negative row")
    false_negative: float = Field(..., ge=0, description="cost of missing a positive row")

    @model_validator(mode="after")
    def _some_cost(self) -> DecisionCost:
        if self.false_positive == 0 and self.false_negative == 0:
            raise ValueError("give at least one cost > 0")
        return self


class DecisionConfig(Section):
    """task: classification (two classes) or multilabel (each label) — how the threshold on P(positive) is
    chosen on the validation split: exactly one of optimize, recall_at_precision, precision_at_recall,
    max_flag_rate, cost."""

    optimize: Literal["f1"] | None = Field(None, description="the threshold with the best F1")
    recall_at_precision: float | None = Field(
        None, gt=0, le=1, description="highest recall whose precision reaches this"
    )
    precision_at_recall: float | None = Field(
        None, gt=0, le=1, description="highest precision whose recall reaches this"
    )
    max_flag_rate: float | None = Field(
        None, gt=0, le=1, description="highest recall flagging at most this share of rows"
    )
    cost: DecisionCost | None = Field(None, description="lowest expected cost: {false_positive, false_negative}")
    positive: str | None = Field(None, description="the positive class (default: the second in sorted order)")

    @model_validator(mode="after")
    def _one_objective(self) -> DecisionConfig:
        given = [name for name in DECISION_OBJECTIVES if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(DECISION_OBJECTIVES)} (got {len(given)})")
        return self

    def objective(self) -> dict[str, Any]:
        """The one objective as {name: value}, the form decision.json records."""
        name = next(n for n in DECISION_OBJECTIVES if getattr(self, n) is not None)
        value = getattr(self, name)
        return {name: value.model_dump() if isinstance(value, BaseModel) else value}


DECISION_OBJECTIVES = ("optimize", "recall_at_precision", "precision_at_recall", "max_flag_rate", "cost")


# ----------------------------------------------------------------------------- model card
class CardConfig(Section):
    """Free-text fields of the model card in `modelforge report` (all optional)."""

    description: str | None = Field(None, description="what the model does, in a sentence or two")
    intended_use: str | None = Field(None, description="who should use it, for what")
    out_of_scope: str | None = Field(None, description="uses it was not built or tested for")
    limitations: str | None = Field(None, description="known weaknesses, data gaps")
    ethical_considerations: str | None = Field(None, description="risks, affected groups, mitigations")
    owners: list[str] = Field(default_factory=list, description="people or teams responsible")
    license: str | None = None
    contact: str | None = None


class RecommendConfig(Section):
    """task: recommendation — which columns hold users, items, ratings and time, and how to split."""

    format: Literal["table", "movielens-100k"] = Field(
        "table", description="table: data.train has user/item(/rating/time) columns; movielens-100k: its folder"
    )
    user: str = Field("user", description="user id column")
    item: str = Field("item", description="item id column")
    rating: str | None = Field("rating", description="rating column (explicit feedback)")
    time: str | None = Field("timestamp", description="time column (orders interactions for leave-last-out)")
    feedback: Literal["explicit", "implicit"] = Field("explicit", description="predict ratings, or rank items")
    min_rating: float | None = Field(None, description="implicit: ratings below this are not interactions")
    split: Literal["random", "leave_last_out"] | None = Field(
        None, description="default: random for explicit, leave_last_out (per user) for implicit"
    )
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="random split: share held out for test")
    negatives: int = Field(4, ge=1, description="implicit: random unseen items per positive")
    k: int = Field(10, ge=1, description="cut-off of recall@K / NDCG@K and of predict's top-K")
    user_features: str | None = Field(None, description="table of user features keyed by the user column")
    item_features: str | None = Field(None, description="table of item features keyed by the item column")


class GenerationConfig(Section):
    """task: generation — how the finished generator is scored (see modelforge.generation.score)."""

    classifier: str | None = Field(None, description="classification run on the same images that scores the samples")
    samples: int = Field(1000, ge=2, description="images sampled (classes in turn) for the score")
    temperature: float = Field(1.0, gt=0, description="scale of the latent noise when sampling for the score")


class Seq2SeqConfig(Section):
    """task: seq2seq — subword vocabularies, length limits and decoding (see modelforge.seq2seq)."""

    source_tokenizer: Literal["bpe", "unigram", "char", "symbols"] = Field(
        "bpe", description="source side: bpe/unigram (byte-level, any text), char, or symbols (space-separated)"
    )
    target_tokenizer: Literal["bpe", "unigram", "char", "symbols"] = Field("bpe", description="target side, as above")
    source_vocab: int = Field(8000, ge=8, description="bpe/unigram: source vocabulary size (the shared one's size)")
    target_vocab: int = Field(8000, ge=8, description="bpe/unigram: target vocabulary size")
    shared_vocab: bool = Field(False, description="one vocabulary trained on both sides (same tokenizer kind)")
    max_source_tokens: int = Field(128, ge=2, description="longest source the model reads; longer is an error")
    max_target_tokens: int = Field(128, ge=2, description="longest target trained on and decoded")
    beam: int = Field(5, ge=1, description="beam width of evaluate, predict, serve and generate (1: greedy)")
    length_penalty: float = Field(0.6, ge=0, description="beam search: GNMT length penalty alpha (0: none)")
    eval_rows: int = Field(500, ge=1, description="validation rows decoded (greedy) for valid_bleu each epoch")

    @model_validator(mode="after")
    def _one_kind_when_shared(self) -> Seq2SeqConfig:
        if self.shared_vocab and self.source_tokenizer != self.target_tokenizer:
            raise ValueError(
                "shared_vocab needs the same source_tokenizer and target_tokenizer, "
                f"got {self.source_tokenizer} and {self.target_tokenizer}"
            )
        return self


class DetectionAugment(Section):
    """Box-aware training augmentation (boxes move with the pixels; boxes mostly cropped away are dropped)."""

    flip: bool = Field(True, description="random horizontal flip (off for text, digits, left/right classes)")
    scale: float = Field(0.25, ge=0.0, lt=1.0, description="random zoom in [1 - scale, 1 + scale], cropped or padded")
    translate: float = Field(0.1, ge=0.0, lt=1.0, description="random shift, max share of the image side")
    jitter: float = Field(0.2, ge=0.0, lt=1.0, description="random brightness and contrast change")


class DetectionConfig(Section):
    image_size: int = Field(320, ge=32, description="side of the square images are letterboxed to (aspect kept)")
    max_detections: int = Field(100, ge=1, description="boxes kept per image (top-k over classes and cells)")
    score_threshold: float = Field(
        0.3, ge=0.0, le=1.0, description="predict and serve keep boxes scoring at least this (evaluate keeps all)"
    )
    nms_iou: float | None = Field(
        0.7, gt=0.0, le=1.0, description="class-aware NMS after peak picking (null: peaks only, CenterNet's way)"
    )
    augment: DetectionAugment = DetectionAugment()


class SpeechConfig(Section):
    """task: speech-recognition — the audio front end, transcript characters and decoding (see modelforge.speech)."""

    sample_rate: int | None = Field(
        None, ge=1000, description="clips are resampled to this rate (default: the training clips' most common rate)"
    )
    n_mels: int = Field(40, ge=8, description="log-mel bands per frame")
    window_ms: float = Field(25.0, gt=0, description="analysis window")
    hop_ms: float = Field(10.0, gt=0, description="frame step")
    max_seconds: float = Field(20.0, gt=0, description="a longer clip is an error naming the file")
    lowercase: bool = Field(True, description="transcripts lower-cased before their characters become tokens")
    beam: int = Field(1, ge=1, description="CTC prefix beam width of evaluate, predict and serve (1: greedy)")
    lexicon: bool = Field(
        False,
        description="decode only words of the training transcripts (a closed vocabulary: digits, commands)",
    )
    augment: AudioAugment | None = Field(
        None,
        description="training augmentation: waveform copies (speed, gain, noise, ...) and spectrogram warp and "
        "masks; the keys of an audio feature's augment, without shift and stretch (they would move the words)",
    )
    warps: list[float] = Field(
        [1.0],
        min_length=1,
        description="evaluate, predict and serve decode the mean of the frame probabilities over these band "
        "warps (band b reads band b·warp, as augment.warp does in training): voices longer or shorter of vocal "
        "tract than the training speakers'; [1.0] decodes the features as they are",
    )

    @model_validator(mode="after")
    def _augment_keeps_the_words_in_place(self) -> SpeechConfig:
        if self.augment is not None and (self.augment.shift or self.augment.stretch):
            raise ValueError("speech.augment: shift and stretch move frames away from their words; use speed")
        return self

    @field_validator("warps")
    @classmethod
    def _warps_in_range(cls, warps: list[float]) -> list[float]:
        if any(not 0.5 <= warp <= 1.5 for warp in warps):
            raise ValueError(f"each warp between 0.5 and 1.5, got {warps}")
        return warps


class RunConfig(Section):
    task: str = Field("classification", description="a registered task (`modelforge tasks` lists them)")
    seed: int = 0
    name: str | None = None
    data: DataConfig
    features: list[FeatureConfig] | None = Field(None, description="inputs (default: all non-target columns, inferred)")
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    init_from: str | None = Field(None, description="start from a run directory's or a Hugging Face folder's weights")
    tune: TuneConfig | None = Field(None, description="hyperparameter search (modelforge tune)")
    card: CardConfig | None = Field(None, description="model card fields shown by modelforge report")
    recommend: RecommendConfig | None = Field(None, description="task recommendation: columns, feedback, split")
    generation: GenerationConfig | None = Field(None, description="task generation: scoring the samples")
    seq2seq: Seq2SeqConfig | None = Field(None, description="task seq2seq: tokenizers, lengths, decoding")
    detection: DetectionConfig | None = Field(None, description="task detection: input size, decoding, augmentation")
    speech: SpeechConfig | None = Field(None, description="task speech-recognition: audio front end, decoding")
    decision: DecisionConfig | None = Field(
        None, description="classification (two classes), multilabel (per label): tune the threshold on validation"
    )
    calibrate: Literal["temperature", "isotonic"] | None = Field(
        None, description="task classification: calibrate probabilities on the validation split"
    )

    @field_validator("task")
    @classmethod
    def _registered_task(cls, value: str) -> str:
        from modelforge.tasks import TASKS

        if value not in TASKS:
            raise ValueError(
                f"unknown task {value!r}{did_you_mean(value, TASKS.names())}; known: {', '.join(TASKS.names())}"
            )
        return value

    @field_validator("features")
    @classmethod
    def _unique_features(cls, value: list[Any] | None) -> list[Any] | None:
        names = [f.name for f in value or []]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"feature listed twice: {', '.join(duplicates)}")
        return value


# ----------------------------------------------------------------------------- loading
def parse_override(text: str) -> tuple[list[str], Any]:
    """`train.lr=3e-4` → (['train', 'lr'], 0.0003); values are YAML (lists, numbers, strings)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected KEY=VALUE, e.g. train.lr=3e-4")
    key, raw = text.split("=", 1)
    path = [part for part in key.strip().split(".") if part]
    if not path:
        raise ConfigError(f"override {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {key}: value {raw!r} is not valid YAML ({exc.__class__.__name__})") from None
    if isinstance(value, str):
        value = _number_or_text(value)
    return path, value


def _number_or_text(value: str) -> Any:
    # PyYAML reads 3e-4 (no dot) as a string; people mean a number.
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {'.'.join(path)}: {part} is not a section")
            node = child
        node[path[-1]] = value
    return raw


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    raw = read_yaml_file(path, ConfigError)
    if raw is None:
        raise ConfigError(f"{path}: the config is empty")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (task, data, model, train)")
    return raw


def load_config(source: str | Path | dict[str, Any], overrides: list[str] | None = None) -> RunConfig:
    """Build the validated RunConfig from a YAML file or a dict, with `--set` overrides.

    Relative data paths in a YAML file are read relative to that file's folder; `dataset:NAME/path`
    is a file of a catalogued dataset in the cache (`modelforge datasets fetch NAME` puts it there).
    """
    if isinstance(source, dict):
        raw, base = _deep_copy(source), Path.cwd()
    else:
        raw, base = read_yaml(source), Path(source).resolve().parent
    raw = apply_overrides(raw, overrides or [])
    config = validate_config(raw)
    return resolve_paths(config, base)


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def validate_config(raw: dict[str, Any]) -> RunConfig:
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, RunConfig)) from None
    check_task_keys(config)
    config = with_task_defaults(config)
    check_task_model(config)
    # features first: a model that cannot take the inputs is the problem to name, not the options a
    # starter config wrote for the model it chose (init's audio_cnn options under model.type=mlp)
    check_declared_features(config)
    check_model_options(config)
    return config


def check_task_model(config: RunConfig) -> None:
    """A task with models of its own takes only those; the others take no model another task owns."""
    from modelforge.tasks import TASKS

    task, model = TASKS.get(config.task), config.model.type
    if task.models and model not in task.models:
        raise ConfigError(f"model.type: task {task.name} takes {', '.join(task.models)}, got {model!r}")
    owners = [name for name in TASKS.names() if model in TASKS.get(name).models]
    if not task.models and owners:
        raise ConfigError(f"model.type: {model} needs task: {owners[0]} (this config has task: {task.name})")


def check_task_keys(config: RunConfig) -> None:
    """Every key given must be one the task reads: a setting that would be silently ignored is an error."""
    from modelforge.tasks import TASKS

    problems = TASKS.get(config.task).check_config(config)
    if problems:
        raise ConfigError("; ".join(problems))


def with_task_defaults(config: RunConfig) -> RunConfig:
    """The task's own defaults for what the config leaves unsaid (its model type, its train.* values)."""
    from modelforge.tasks import TASKS

    task = TASKS.get(config.task)
    update: dict[str, Any] = {}
    if "type" not in config.model.model_fields_set:
        update["model"] = ModelConfig(type=task.default_model, **config.model.options())
    train_defaults = {k: v for k, v in task.train_defaults.items() if k not in config.train.model_fields_set}
    if train_defaults:
        update["train"] = config.train.model_copy(update=train_defaults)
    return config.model_copy(update=update) if update else config


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    """The resolved config as saved with a run: every default filled in, but only the keys its task reads."""
    from modelforge.tasks import TASKS

    task = TASKS.get(config.task)
    raw = config.model_dump(mode="json", exclude_none=False)
    raw["data"] = {k: v for k, v in raw["data"].items() if k in task.data_keys}
    raw["train"] = {k: v for k, v in raw["train"].items() if k in task.train_keys}
    for section in OPTIONAL_SECTIONS:
        if section not in task.sections and raw.get(section) is None:
            raw.pop(section, None)
    return raw


def check_model_options(config: RunConfig) -> None:
    """Model options must be parameters of the chosen model's builder, or keys the task reads for any model."""
    from modelforge.models.registry import SHARED_MODEL_KEYS, model_options
    from modelforge.tasks import TASKS

    try:
        allowed = model_options(config.model.type)
    except Exception as exc:  # RegistryError with the close-match hint
        raise ConfigError(f"model.type: {exc}") from None
    task_keys = TASKS.get(config.task).model_keys
    problems = []
    for key in config.model.options():
        if key in task_keys:
            continue
        if key in SHARED_MODEL_KEYS:
            readers = ", ".join(name for name in TASKS.names() if key in TASKS.get(name).model_keys)
            problems.append(f"model.{key}: read by tasks {readers}, not by task {config.task}")
        elif key not in allowed:
            problems.append(f"model.{key}: unknown option for {config.model.type}{did_you_mean(key, allowed)}")
    members = config.model.options().get("members", 1)
    if "members" in task_keys and (isinstance(members, bool) or not isinstance(members, int) or members < 1):
        problems.append(f"model.members: a whole number of models to ensemble, at least 1; got {members!r}")
    if problems:
        raise ConfigError("; ".join(problems))


def check_declared_features(config: RunConfig) -> None:
    """Each listed feature must be of a kind the model takes (inferred ones: training/recipe.py)."""
    if config.features:
        from modelforge.models.registry import check_model_features

        check_model_features(config.model.type, [(f.name, f.type) for f in config.features])


def resolve_paths(config: RunConfig, base: Path) -> RunConfig:
    def resolve(path: str | None) -> str | None:
        if path is None:
            return None
        if path.startswith(DATASET_PREFIX):  # a file of a catalogued dataset, read from the cache
            return str(resolve_dataset_path(path))
        candidate = Path(path).expanduser()
        return str(candidate if candidate.is_absolute() else (base / candidate).resolve())

    if config.init_from:
        config = config.model_copy(update={"init_from": resolve(config.init_from)})
    if config.generation is not None and config.generation.classifier:
        scorer = {"classifier": resolve(config.generation.classifier)}
        config = config.model_copy(update={"generation": config.generation.model_copy(update=scorer)})
    if config.recommend is not None:
        tables = {"user_features": resolve(config.recommend.user_features)}
        tables["item_features"] = resolve(config.recommend.item_features)
        config = config.model_copy(update={"recommend": config.recommend.model_copy(update=tables)})

    def resolve_files(files: str | ParallelFiles | None) -> str | ParallelFiles | None:
        if isinstance(files, ParallelFiles):  # seq2seq's line-aligned pair of files
            return files.model_copy(update={"source": resolve(files.source), "target": resolve(files.target)})
        return resolve(files)

    data = config.data
    train = [resolve(p) for p in data.train] if isinstance(data.train, list) else resolve_files(data.train)
    updated = data.model_copy(
        update={"train": train, "valid": resolve_files(data.valid), "test": resolve_files(data.test)}
    )
    features = config.features
    if features and any(f.type in ("audio", "image") for f in features):
        # relative WAV and image paths in a table are read from the table's folder unless `root` says otherwise
        first = train[0] if isinstance(train, list) else train
        default_root = str(Path(first).parent) if first and Path(first).is_file() else None
        features = [
            f.model_copy(update={"root": resolve(f.root) if f.root else default_root})
            if isinstance(f, AudioFeature | ImageFeature)
            else f
            for f in features
        ]
    return config.model_copy(update={"data": updated, "features": features})


def config_to_yaml(config: RunConfig) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


# ----------------------------------------------------------------------------- error text
def format_validation_error(exc: ValidationError, root: type[BaseModel]) -> str:
    """One line per problem: `train.lr: must be > 0, got -1`; unknown keys get a hint."""
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"] if not _is_union_tag(part)]
        path = ".".join(loc) or "config"
        if error["type"] == "extra_forbidden":
            fields = _fields_at(root, error["loc"][:-1])
            lines.append(f"{path}: unknown key{did_you_mean(loc[-1], fields)}")
        elif error["type"] == "missing":
            lines.append(f"{path}: required key is missing")
        else:
            lines.append(f"{path}: {_short_message(error)}, got {error.get('input')!r}")
    return "; ".join(lines)


def _is_union_tag(part: Any) -> bool:
    return isinstance(part, str) and part in {"numeric", "category", "text", "image", "audio"}


def _short_message(error: dict[str, Any]) -> str:
    message = str(error["msg"])
    for prefix in ("Value error, ", "Input should be "):
        if message.startswith(prefix):
            message = ("must be " if prefix == "Input should be " else "") + message[len(prefix) :]
    return message.replace("greater than", ">").replace("less than", "<").replace(" or equal to", "=")


def _fields_at(model: Any, loc: tuple[Any, ...]) -> list[str]:
    """Names of the fields of the section at `loc` (for did-you-mean on unknown keys)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        candidates = _model_types(current)
        if isinstance(part, str) and part in {"numeric", "category", "text", "image", "audio"}:
            current = [
                c for c in candidates if c.model_fields.get("type") and part in str(c.model_fields["type"].annotation)
            ]
            continue
        nxt = []
        for cand in candidates:
            if part in cand.model_fields:
                nxt.append(cand.model_fields[part].annotation)
        current = nxt
    names: set[str] = set()
    for cand in _model_types(current):
        names.update(cand.model_fields)
    return sorted(names)


def _model_types(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, list):
        found: list[type[BaseModel]] = []
        for item in annotation:
            found.extend(_model_types(item))
        return found
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType, list, tuple, Annotated):
        return _model_types(list(typing.get_args(annotation)))
    return []
