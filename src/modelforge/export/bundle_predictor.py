"""Predictions from an exported modelforge run, without PyTorch and without modelforge.

This file is copied as-is into every deploy bundle (`modelforge export RUN --format bundle`),
beside model.onnx, preprocessing.json and labels.json. It needs numpy and onnxruntime, plus
`tokenizers` for runs over pretrained-encoder text and Pillow for image files; it imports
nothing else outside the standard library (audio is read with `wave`).

    from predictor import predict
    predict([{"age": 51, "city": "Lyon"}])   # [{"label": "yes", "probabilities": {"no": 0.2, "yes": 0.8}}]

    python predictor.py predict rows.jsonl    # one JSON answer per line (rows: .jsonl, .json or .csv)
    python predictor.py serve --port 8000     # POST /predict {"records": [...]}, GET /health

Each step mirrors the run's fitted preprocessing (`modelforge.data.features`), so the answers
are those of `modelforge predict RUN` on the same rows. A record missing a column, or a value
that cannot be read, raises `BundleInputError` with one line naming the record and column.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import sys
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
BATCH_ROWS = 1024  # as `modelforge predict`: the text families trim padding per batch of this many rows
PAD, UNK = 0, 1
WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)
LOG_FLOOR = 1e-6
# as modelforge.data.features: written-out missing values, and numbers written for people ("$1,234.50", "12%")
MISSING_MARKERS = frozenset({"", "?", "-", "--", ".", "na", "n/a", "nan", "null", "none", "missing"})
WRITTEN_NUMBER = re.compile(r"^\s*([-+]?)\s*[$€£¥]?\s*([-+]?(?:\d{1,3}(?:,\d{3})+|\d*)(?:\.\d+)?)\s*%?\s*$")


class BundleInputError(ValueError):
    """Records the bundle cannot predict (a missing column, an unreadable value)."""


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# ----------------------------------------------------------------------------- tabular and text
def written_number(value: Any) -> float | None:
    """A number, NaN for a missing value, or None for a value that is neither (as `features.numbers`)."""
    if _missing(value) or (isinstance(value, str) and value.strip().lower() in MISSING_MARKERS):
        return math.nan
    match = WRITTEN_NUMBER.match(str(value))
    written = match[1] + match[2].replace(",", "").replace("+", "") if match and any(map(str.isdigit, match[2])) else ""
    for text in (value, written):
        try:
            return float(text)
        except (TypeError, ValueError):
            pass
    return None


def numeric_feature(name: str, state: dict[str, Any], folder: Path) -> Callable[[list[Any]], np.ndarray]:
    def transform(values: list[Any]) -> np.ndarray:
        out = np.empty(len(values), dtype=np.float64)
        for row, value in enumerate(values):
            number = written_number(value)
            if number is None:
                raise BundleInputError(f"record {row + 1}, column {name!r}: not a number: {value!r}")
            out[row] = number
        out = np.where(np.isnan(out), state["fill_"], out)
        scaled = (out - state["shift_"]) / state["scale_"]
        if state.get("clip_outliers") is not None:
            scaled = np.clip(scaled, -state["clip_outliers"], state["clip_outliers"])
        return scaled.astype(np.float32)

    return transform


def category_feature(name: str, state: dict[str, Any], folder: Path) -> Callable[[list[Any]], np.ndarray]:
    index = {value: i + 1 for i, value in enumerate(state["vocabulary_"])}  # 0: unknown

    def transform(values: list[Any]) -> np.ndarray:
        return np.array([0 if _missing(v) else index.get(str(v), 0) for v in values], dtype=np.int64)

    return transform


def text_feature(name: str, state: dict[str, Any], folder: Path) -> Callable[[list[Any]], np.ndarray]:
    length = int(state["max_length"])
    if state["tokenizer"] == "hf":
        return _hf_text(state, folder / "tokenizer.json", length)
    index = {token: i for i, token in enumerate(state["vocabulary_"])}

    def tokens(text: str) -> list[str]:
        text = text.lower() if state["lowercase"] else text
        return list(text) if state["tokenizer"] == "char" else WORD.findall(text)

    def transform(values: list[Any]) -> np.ndarray:
        out = np.zeros((len(values), length), dtype=np.int64)
        for row, value in enumerate(values):
            ids = [index.get(t, UNK) for t in tokens("" if _missing(value) else str(value))[:length]]
            out[row, : len(ids)] = ids
        return out

    return transform


def _hf_text(state: dict[str, Any], file: Path, length: int) -> Callable[[list[Any]], np.ndarray]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(file))
    padding = tokenizer.padding or {}
    pad_token = padding.get("pad_token", "[PAD]")
    pad_id = padding.get("pad_id", tokenizer.token_to_id(pad_token) or 0)
    tokenizer.enable_truncation(length)
    tokenizer.enable_padding(length=length, pad_id=pad_id, pad_token=pad_token)

    def transform(values: list[Any]) -> np.ndarray:
        texts = ["" if _missing(v) else str(v) for v in values]
        encodings = tokenizer.encode_batch(texts)
        return np.array([e.ids for e in encodings], dtype=np.int64).reshape(len(values), length)

    return transform


# ----------------------------------------------------------------------------- images
def image_feature(name: str, state: dict[str, Any], folder: Path) -> Callable[[list[Any]], np.ndarray]:
    channels, (height, width) = int(state["channels_"]), state["size_"]
    mean = np.asarray(state["mean_"], dtype=np.float32)[None, :, None, None]
    std = np.asarray(state["std_"], dtype=np.float32)[None, :, None, None]

    def transform(values: list[Any]) -> np.ndarray:
        raw = np.empty((len(values), channels, height, width), dtype=np.float32)
        for row, value in enumerate(values):
            raw[row] = _to_chw(_load_image(value, name, row, state.get("root")), channels, (height, width))
        return (raw - mean) / std

    return transform


def _load_image(value: Any, name: str, row: int, root: str | None = None) -> np.ndarray:
    if isinstance(value, np.ndarray | list):
        return np.asarray(value, dtype=np.float32)
    if _missing(value):
        raise BundleInputError(f"record {row + 1}, column {name!r}: missing image")
    try:
        from PIL import Image
    except ImportError:
        raise BundleInputError(
            f"record {row + 1}, column {name!r}: image files need Pillow (pip install pillow)"
        ) from None
    path = Path(str(value)).expanduser()
    if not path.is_absolute() and not path.exists() and root:
        path = Path(root) / path
    try:
        with Image.open(path) as image:
            image.load()
            mode = "L" if image.mode in ("L", "1", "I", "I;16", "F") else "RGB"
            return np.asarray(image.convert(mode), dtype=np.float32) / 255.0
    except OSError as exc:
        raise BundleInputError(f"record {row + 1}, column {name!r}: cannot read image {value} ({exc})") from None


def _to_chw(image: np.ndarray, channels: int, size: tuple[int, int]) -> np.ndarray:
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[-1] not in (1, 3, 4) and image.shape[0] in (1, 3):  # C×H×W given
        image = np.moveaxis(image, 0, -1)
    image = image[:, :, :3]
    if image.shape[-1] != channels:
        image = image.mean(axis=-1, keepdims=True) if channels == 1 else np.repeat(image[:, :, :1], 3, axis=-1)
    if image.shape[:2] != tuple(size):
        from PIL import Image

        resized = [
            np.asarray(Image.fromarray(image[:, :, c]).resize((size[1], size[0]), Image.BILINEAR))
            for c in range(image.shape[-1])
        ]
        image = np.stack(resized, axis=-1)
    return np.moveaxis(image, -1, 0)


# ----------------------------------------------------------------------------- audio
def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples in [-1, 1] and the sample rate (PCM 8/16/24/32-bit WAV)."""
    with wave.open(str(path), "rb") as handle:
        rate, width, channels = handle.getframerate(), handle.getsampwidth(), handle.getnchannels()
        raw = handle.readframes(handle.getnframes())
    if width == 1:
        samples = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 3:
        bytes3 = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = bytes3[:, 0] | (bytes3[:, 1] << 8) | (bytes3[:, 2] << 16)
        samples = (np.where(value >= 1 << 23, value - (1 << 24), value) / float(1 << 23)).astype(np.float32)
    elif width == 4:
        samples = np.frombuffer(raw, dtype="<i4").astype(np.float32) / 2147483648.0
    else:
        raise wave.Error(f"unsupported sample width {width} bytes")
    samples = samples[: len(samples) - len(samples) % channels].reshape(-1, channels).mean(axis=1)
    if samples.size == 0:
        raise wave.Error("the audio file has no samples")
    return samples, rate


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return samples
    n_out = max(1, round(len(samples) * target / rate))
    spectrum = np.fft.rfft(samples)
    keep = min(len(spectrum), n_out // 2 + 1)
    return (np.fft.irfft(spectrum[:keep], n=n_out) * (n_out / len(samples))).astype(np.float32)


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int) -> np.ndarray:
    def to_mel(hz: Any) -> Any:
        return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)

    edges = 700.0 * (10.0 ** (np.linspace(0.0, to_mel(sample_rate / 2), n_mels + 2) / 2595.0) - 1.0)
    bins = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None] - lower) / np.maximum(center - lower, 1e-9)
    falling = (upper - bins[None]) / np.maximum(upper - center, 1e-9)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


def dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    k, n = np.arange(n_out)[:, None], np.arange(n_in)[None]
    matrix = np.cos(np.pi / n_in * (n + 0.5) * k) * np.sqrt(2.0 / n_in)
    matrix[0] /= np.sqrt(2.0)
    return matrix.astype(np.float32)


def log_mel(
    samples: np.ndarray, sample_rate: int, n_mels: int, window: int, hop: int, floor_db: float | None = None
) -> np.ndarray:
    n_fft = 1 << max(0, (window - 1).bit_length())
    padded = np.pad(samples, (n_fft // 2, n_fft // 2))
    n_frames = 1 + (len(padded) - n_fft) // hop
    index = np.arange(n_fft)[None] + hop * np.arange(n_frames)[:, None]
    taper = np.zeros(n_fft, dtype=np.float32)
    start = (n_fft - window) // 2
    taper[start : start + window] = np.hanning(window)
    power = np.abs(np.fft.rfft(padded[index] * taper, axis=1)) ** 2
    mel = mel_filterbank(n_mels, n_fft, sample_rate) @ power.T
    floor = LOG_FLOOR if floor_db is None else max(LOG_FLOOR, float(mel.max(initial=0.0)) * 10.0 ** (-floor_db / 10))
    return np.log(mel + floor).astype(np.float32)


def trim_silence(samples: np.ndarray, rate: int, below_peak_db: float, margin_ms: float = 25.0) -> np.ndarray:
    """data/audio_vad.py's trim: the span within below_peak_db of the loudest 10 ms, plus a margin."""
    width = max(1, round(rate * 10.0 / 1000))
    padded = np.pad(samples.astype(np.float64) ** 2, (width // 2, width - width // 2))
    total = np.concatenate([[0.0], np.cumsum(padded)])
    envelope = np.sqrt(np.maximum(total[width : width + len(samples)] - total[: len(samples)], 0.0) / width)
    peak = float(envelope.max(initial=0.0))
    start, end = 0, len(samples)
    if peak > 0.0:
        loud = np.flatnonzero((envelope >= peak * 10.0 ** (-below_peak_db / 20.0)) & (samples != 0))
        start, end = int(loud[0]), int(loud[-1]) + 1
    margin = round(rate * margin_ms / 1000)
    return np.pad(samples, (margin, margin))[start : end + 2 * margin]


def stretch_frames(features: np.ndarray, frames: int) -> np.ndarray:
    length = features.shape[1]
    position = np.linspace(0.0, length - 1, frames)
    left = np.floor(position).astype(int)
    right = np.minimum(left + 1, length - 1)
    share = (position - left).astype(np.float32)
    return (features[:, left] * (1 - share) + features[:, right] * share).astype(np.float32)


def audio_feature(name: str, state: dict[str, Any], folder: Path) -> Callable[[list[Any]], np.ndarray]:
    rate = int(state["sample_rate_"])
    stretch = state.get("length", "pad") == "stretch"
    length = 0 if stretch else int(state["samples_"])
    hop = max(1, round(rate * state["hop_ms"] / 1000))
    window = max(2, round(rate * state["window_ms"] / 1000))
    mean = np.asarray(state["mean_"], dtype=np.float32)[None, :, None]
    std = np.asarray(state["std_"], dtype=np.float32)[None, :, None]

    def waveform(value: Any, row: int) -> np.ndarray:
        if _missing(value):
            raise BundleInputError(f"record {row + 1}, column {name!r}: missing audio path")
        path = Path(str(value)).expanduser()
        if not path.is_absolute() and not path.exists() and state.get("root"):
            path = Path(state["root"]) / path
        try:
            samples, source_rate = read_wav(path)
        except (wave.Error, EOFError, OSError) as exc:
            raise BundleInputError(
                f"record {row + 1}, column {name!r}: cannot read {path} as PCM WAV ({exc})"
            ) from None
        if state.get("max_duration") and len(samples) > state["max_duration"] * source_rate:
            raise BundleInputError(
                f"record {row + 1}, column {name!r}: {path} lasts {len(samples) / source_rate:.1f} s, "
                f"longer than max_duration {state['max_duration']:g} s"
            )
        samples = resample(samples, source_rate, rate)
        recorded = np.flatnonzero(samples) if state.get("remove_dc") else []
        if len(recorded):  # data/audio_vad.py's remove_dc
            start, end = recorded[0], recorded[-1] + 1
            samples = samples.astype(np.float32)
            samples[start:end] -= np.float32(samples[start:end].mean(dtype=np.float64))
        if state.get("trim_db"):
            samples = trim_silence(samples, rate, state["trim_db"])
        if state.get("gain") == "rms":
            rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else 0.0
            samples = (samples * (0.1 / rms)).astype(np.float32) if rms > 1e-8 else samples.astype(np.float32)
        elif state.get("gain") == "peak":
            samples = samples / max(float(np.abs(samples).max(initial=0.0)), 1e-8)
        return samples

    def spectrogram(samples: np.ndarray) -> np.ndarray:
        own = log_mel(samples, rate, state["n_mels"], window, hop, state.get("floor_db"))
        if state["representation"] == "mfcc":
            own = dct_matrix(state["n_mfcc"], state["n_mels"]) @ own
        return stretch_frames(own, int(state["frames_"]))

    def transform(values: list[Any]) -> np.ndarray:
        waves = [waveform(v, i) for i, v in enumerate(values)]
        if stretch:  # each clip's own spectrogram resampled to the same frames; every frame is the clip's
            features = np.stack([spectrogram(w) for w in waves]).astype(np.float32)
            if state["normalize"] == "utterance":
                features = features - features.mean(axis=2, keepdims=True)
            return ((features - mean) / std)[:, None]
        fixed = np.zeros((len(waves), length), dtype=np.float32)
        for row, samples in enumerate(waves):
            fixed[row, : min(length, len(samples))] = samples[:length]
        features = np.stack([log_mel(s, rate, state["n_mels"], window, hop, state.get("floor_db")) for s in fixed])
        if state["representation"] == "mfcc":
            features = np.einsum("km,nmt->nkt", dct_matrix(state["n_mfcc"], state["n_mels"]), features)
        features = features.astype(np.float32)
        if state["normalize"] == "utterance":
            own_mean = np.zeros_like(features)
            for row, samples in enumerate(waves):
                frames = min(features.shape[2], 1 + min(len(samples), length) // hop)
                own = features[row, :, :frames]
                own_mean[row, :, :frames] = own - own.mean(axis=1, keepdims=True)
            features = own_mean
        return ((features - mean) / std)[:, None]

    return transform


FEATURES = {
    "numeric": numeric_feature,
    "category": category_feature,
    "text": text_feature,
    "image": image_feature,
    "audio": audio_feature,
}


# ----------------------------------------------------------------------------- the bundle
class Bundle:
    """The exported model and its preprocessing, read from a bundle folder."""

    def __init__(self, folder: str | Path = HERE, threads: int | None = None) -> None:
        import onnxruntime as ort

        folder = Path(folder)
        self.preprocessing = json.loads((folder / "preprocessing.json").read_text())
        self.labels = json.loads((folder / "labels.json").read_text())
        self.features = [
            (f["name"], f["type"], FEATURES[f["type"]](f["name"], f["state"], folder))
            for f in self.preprocessing["features"]
        ]
        decision_file = folder / "decision.json"  # a run's calibration and threshold (modelforge.decision)
        self.decision = json.loads(decision_file.read_text()) if decision_file.exists() else {}
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    @property
    def columns(self) -> list[str]:
        return [name for name, _, _ in self.features]

    def inputs(self, records: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        for row, record in enumerate(records):
            if not isinstance(record, dict):
                raise BundleInputError(f"record {row + 1}: expected an object of column → value, got {record!r:.60}")
            missing = [c for c in self.columns if c not in record]
            if missing:
                raise BundleInputError(
                    f"record {row + 1}: column {missing[0]!r} is missing; the model needs {', '.join(self.columns)}"
                )
        hashed = set(self.preprocessing.get("hashed_columns", []))
        groups: dict[str, list[np.ndarray]] = {}
        for name, kind, transform in self.features:
            values = [_digest(r[name]) if name in hashed else r[name] for r in records]
            groups.setdefault(kind, []).append(transform(values))
        return {
            kind: np.stack(parts, axis=1) if kind in ("numeric", "category") else parts[0]
            for kind, parts in groups.items()
        }

    def raw_outputs(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        rows = len(next(iter(inputs.values())))
        parts = [
            self.session.run(None, {n: np.ascontiguousarray(inputs[n][b : b + BATCH_ROWS]) for n in self.input_names})[
                0
            ]
            for b in range(0, rows, BATCH_ROWS)
        ]
        return np.concatenate(parts).astype(np.float32)

    def predict(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One answer per record: {label, probabilities} (classification) or {prediction} (regression)."""
        if not records:
            return []
        raw = self.raw_outputs(self.inputs(records)).astype(np.float64)
        if "target_scale" in self.labels:  # a value (regression), else classes
            scale = self.labels["target_scale"]
            return [{"prediction": float(v)} for v in raw[:, 0] * scale["std_"] + scale["mean_"]]
        classes = self.labels["classes"]
        if raw.shape[1] == 1:
            positive = 1.0 / (1.0 + np.exp(-raw[:, 0]))
            probabilities = np.stack([1 - positive, positive], axis=1)
        else:
            shifted = np.exp(raw - raw.max(axis=1, keepdims=True))
            probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        probabilities = self.calibrated(probabilities)
        return [
            {"label": classes[c], "probabilities": {str(k): float(q) for k, q in zip(classes, p, strict=True)}}
            for c, p in zip(self.choose(probabilities), probabilities, strict=True)
        ]

    def calibrated(self, probabilities: np.ndarray) -> np.ndarray:
        """The saved calibration (temperature, or isotonic on the positive class), as `Decision.calibrated`."""
        calibration = self.decision.get("calibration") or {}
        if calibration.get("method") == "temperature":
            scaled = np.log(np.clip(probabilities, np.finfo(np.float64).tiny, 1.0)) / calibration["temperature"]
            scaled = np.exp(scaled - scaled.max(axis=1, keepdims=True))
            return scaled / scaled.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]
        if calibration.get("method") == "isotonic":
            positive = int(self.decision["positive_index"])
            mapped = np.interp(probabilities[:, positive], calibration["x"], calibration["y"])
            result = np.empty_like(probabilities)
            result[:, positive], result[:, 1 - positive] = mapped, 1 - mapped
            return result
        return probabilities

    def choose(self, probabilities: np.ndarray) -> list[int]:
        """Class index per row: the positive class at or above the saved threshold, else the most probable."""
        threshold, positive = self.decision.get("threshold"), self.decision.get("positive_index")
        if threshold is None or positive is None:
            return [int(i) for i in probabilities.argmax(axis=1)]
        return [positive if p >= threshold else 1 - positive for p in probabilities[:, positive]]


def _digest(value: Any) -> Any:
    """A hashed column's stable digest, as the run computed it at training (`data.hash`)."""
    return value if _missing(value) else hashlib.sha256(str(value).encode()).hexdigest()[:16]


_default: Bundle | None = None


def predict(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Predictions for records (dicts of column → value) with the bundle this file sits in."""
    global _default
    if _default is None:
        _default = Bundle(HERE)
    return _default.predict(records)


# ----------------------------------------------------------------------------- command line and server
def read_records(path: str) -> list[dict[str, Any]]:
    file = Path(path)
    text = sys.stdin.read() if path == "-" else file.read_text()
    if file.suffix == ".csv":
        return list(csv.DictReader(text.splitlines()))
    if file.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    return data["records"] if isinstance(data, dict) else data


def serve(port: int, host: str = "127.0.0.1") -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    bundle = Bundle(HERE)

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict[str, Any]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            if self.path == "/health":
                self._answer(200, {"status": "ok", "columns": bundle.columns})
            else:
                self._answer(404, {"error": "GET /health or POST /predict"})

        def do_POST(self) -> None:
            if self.path != "/predict":
                self._answer(404, {"error": "POST /predict"})
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                records = body.get("records") if isinstance(body, dict) else None
                if not isinstance(records, list):
                    raise BundleInputError('the body must be {"records": [{column: value, ...}, ...]}')
                self._answer(200, {"predictions": bundle.predict(records)})
            except (BundleInputError, json.JSONDecodeError) as exc:
                self._answer(422, {"error": str(exc)})

    print(f"serving http://{host}:{port} (POST /predict, GET /health)", file=sys.stderr)
    ThreadingHTTPServer((host, port), Handler).serve_forever()


def main(argv: list[str]) -> int:
    usage = "usage: python predictor.py predict ROWS.jsonl|.json|.csv|-  |  python predictor.py serve [--port N]"
    if len(argv) >= 2 and argv[0] == "predict":
        try:
            for answer in predict(read_records(argv[1])):
                print(json.dumps(answer))
        except (BundleInputError, OSError, json.JSONDecodeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    if argv and argv[0] == "serve":
        port = int(argv[argv.index("--port") + 1]) if "--port" in argv else 8000
        host = argv[argv.index("--host") + 1] if "--host" in argv else "127.0.0.1"
        serve(port, host)
        return 0
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
