"""Deploy every model: ONNX parity and eager vs frozen vs onnxruntime latency, per registered model.

    .venv/bin/python bench/export_engines.py [--models lstm,gpt] [--rows 300] [--threads 1]

Each registered model is built at its example size (builder defaults; the inputs of the example
configs: 30 numeric columns, SST-2-like text of 48 tokens, 8×8 digits, FSDD-like 32×67
spectrograms, MovieLens ids, MiniLM text of 64 tokens), exported with the task's ONNX exporter and
checked for parity (batches of 1 and 7, shortest and longest rows, and the whole sample). Then,
with `--threads` threads, batch-1 latency p50/p95 over `--rows` calls (quietest of 3 rounds) and
batch-64 throughput: eager PyTorch (inference_mode), the frozen TorchScript graph serve uses
(the families it freezes), onnxruntime. GPT rows time one decode step with a 32-token KV cache.
Prints the machine, one markdown table and the ratio eager / onnxruntime at batch 1.

With `--int8-runs DIR` it then trains four small real runs into DIR (reused when there:
breast-cancer MLP, digits CNN, SST-2 BiLSTM on 8,000 phrases, FSDD audio CNN), exports each and
prints `modelforge benchmark RUN --engine all` for it: torch, frozen, onnx and onnx-int8
(onnxruntime's dynamic int8 quantization of the exported graph), with each one's held-out accuracy.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _machine import auto_line, print_header

from modelforge.compress.benchmark import quietest_round
from modelforge.data.preprocess import InputSpec
from modelforge.export.frozen import freeze_for_inference
from modelforge.export.gpt_onnx import GPTWithPast, empty_past, export_gpt_onnx
from modelforge.export.graphs import Decoder, PairScorer, export_decoder_onnx, export_scorer_onnx
from modelforge.export.onnx import export_model_onnx, onnx_session
from modelforge.export.parity import ExportError
from modelforge.models.generative import ImageGenerationSpec
from modelforge.models.recommend import InteractionSpec
from modelforge.models.registry import MODELS, build_model, load_families

TEXT = InputSpec(text_vocab_size=20000, text_length=48)
SPECS: dict[str, Any] = {
    "mlp": InputSpec(numeric_dim=30),
    "cnn": InputSpec(image_shape=(1, 8, 8)),
    "resnet": InputSpec(image_shape=(1, 8, 8)),
    "vit": InputSpec(image_shape=(1, 8, 8)),
    "lstm": TEXT,
    "gru": TEXT,
    "transformer": TEXT,
    "hf_encoder": InputSpec(text_vocab_size=30522, text_length=64, text_tokenizer="hf"),
    "audio_cnn": InputSpec(audio_shape=(1, 32, 67)),
    "audio_transformer": InputSpec(audio_shape=(1, 32, 67)),
    "mf": InteractionSpec(n_users=944, n_items=1683, global_mean=3.5),
    "two_tower": InteractionSpec(n_users=944, n_items=1683, user_feature_dim=24, item_feature_dim=19),
    "vae": ImageGenerationSpec(channels=1, height=8, width=8, n_classes=10),
    "gan": ImageGenerationSpec(channels=1, height=8, width=8, n_classes=10),
}
OPTIONS: dict[str, dict[str, Any]] = {"vit": {"patch_size": 4}, "hf_encoder": {"cache_rows": 0}}
OUTPUTS = {"gpt": 65, "mf": 1, "two_tower": 1, "vae": 0, "gan": 0}


def text_rows(spec: InputSpec, rows: int, generator: torch.Generator) -> torch.Tensor:
    """Right-padded token ids, lengths spread like SST-2 phrases (3 to the full length)."""
    low = 1000 if spec.text_tokenizer == "hf" else 2
    tokens = torch.randint(low, spec.text_vocab_size, (rows, spec.text_length), generator=generator)
    lengths = torch.randint(3, spec.text_length + 1, (rows,), generator=generator)
    return tokens.masked_fill(torch.arange(spec.text_length)[None, :] >= lengths[:, None], 0)


def group_inputs(spec: InputSpec, rows: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    from modelforge.export.frozen import random_inputs

    inputs = random_inputs(spec, rows, generator)
    if "text" in inputs:
        inputs["text"] = text_rows(spec, rows, generator)
    return inputs


def timings(call: Callable[[int], Any], rows: int) -> tuple[float, float]:
    seconds = quietest_round(call, rows)
    return float(np.percentile(seconds, 50) * 1e3), float(np.percentile(seconds, 95) * 1e3)


def throughput(call: Callable[[], Any]) -> float:
    seconds = quietest_round(lambda _: call(), 30, warmup=3)
    return 64 / float(np.median(seconds))


def measure(name: str, rows: int, folder: Path) -> dict[str, Any]:
    """Parity, then eager / frozen / onnxruntime batch-1 p50, p95 and batch-64 rows/s for one model."""
    generator = torch.Generator().manual_seed(0)
    spec = SPECS.get(name)
    torch.manual_seed(0)
    if name == "gpt":
        model = build_model(name, None, OUTPUTS[name], {})
    else:
        model = build_model(name, spec, OUTPUTS.get(name, 3), OPTIONS.get(name, {}))
    model.eval()
    dest = folder / f"{name}.onnx"
    frozen, frozen_note = None, "not a model over input groups"
    if name == "gpt":
        prompts = torch.randint(0, OUTPUTS[name], (7, model.config.context), generator=generator)
        parity = export_gpt_onnx(model, prompts, dest)
        wrapper = GPTWithPast(model).eval()

        def batch_of(n: int) -> dict[str, torch.Tensor]:  # one new token after a 32-token cache
            with torch.no_grad():
                _, keys, values = wrapper(prompts[:1, :32].repeat(n, 1), empty_past(model, n), empty_past(model, n))
            return {
                "tokens": torch.randint(0, 65, (n, 1), generator=generator),
                "past_keys": keys,
                "past_values": values,
            }

        def eager(batch: dict[str, torch.Tensor]) -> Any:
            return wrapper(batch["tokens"], batch["past_keys"], batch["past_values"])

    elif isinstance(spec, InteractionSpec):
        tables = {}
        if spec.user_feature_dim:
            tables = {
                "user_features": torch.randn(spec.n_users, spec.user_feature_dim, generator=generator),
                "item_features": torch.randn(spec.n_items, spec.item_feature_dim, generator=generator),
            }
        pairs = {
            "user": torch.randint(1, spec.n_users, (256,), generator=generator),
            "item": torch.randint(1, spec.n_items, (256,), generator=generator),
        }
        parity = export_scorer_onnx(model, tables, pairs, dest)
        scorer = PairScorer(model, tables).eval()

        def batch_of(n: int) -> dict[str, torch.Tensor]:
            return {k: v[torch.arange(n) % 256] for k, v in pairs.items()}

        def eager(batch: dict[str, torch.Tensor]) -> Any:
            return scorer(batch["user"], batch["item"])

    elif isinstance(spec, ImageGenerationSpec):
        parity = export_decoder_onnx(model, dest)
        decoder = Decoder(model).eval()

        def batch_of(n: int) -> dict[str, torch.Tensor]:
            return {"z": torch.randn(n, model.latent, generator=generator), "labels": torch.arange(n) % 10}

        def eager(batch: dict[str, torch.Tensor]) -> Any:
            return decoder(batch["z"], batch["labels"])

    else:
        sample = group_inputs(spec, 256, generator)
        parity = export_model_onnx(model, sample, dest)

        def batch_of(n: int) -> dict[str, torch.Tensor]:
            return {k: v[torch.arange(n) % 256] for k, v in sample.items()}

        eager = model
        try:
            frozen = freeze_for_inference(model, {"type": name}, spec, "fp32")
        except ExportError as exc:
            frozen, frozen_note = None, str(exc).split("(")[0].strip()
    session = onnx_session(dest, threads=torch.get_num_threads())
    names = [i.name for i in session.get_inputs()]
    singles = [batch_of(1) for _ in range(50)]
    batch64 = batch_of(64)

    def with_torch(call: Callable[[dict[str, torch.Tensor]], Any]) -> Callable[[dict[str, torch.Tensor]], Any]:
        def run(batch: dict[str, torch.Tensor]) -> Any:
            with torch.inference_mode():
                return call(batch)

        return run

    def with_onnx(batch: dict[str, torch.Tensor]) -> Any:
        return session.run(None, {n: batch[n].numpy() for n in names})

    engines = {"eager": with_torch(eager), "onnxruntime": with_onnx}
    if frozen is not None:
        engines["frozen"] = with_torch(frozen)
        frozen_note = ""
    result: dict[str, Any] = {"model": name, "parity": parity.max_abs_diff, "frozen_note": frozen_note}
    for engine, call in engines.items():
        result[engine] = (
            *timings(lambda i, c=call: c(singles[i % len(singles)]), rows),
            throughput(lambda c=call: c(batch64)),
        )
    return result


# ----------------------------------------------------------------------------- int8: accuracy deltas on trained runs
ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "datasets"


def trained_runs(folder: Path) -> list[Path]:
    """Small real runs (reused when already in `folder`): table, image, text, audio."""
    import pandas as pd

    from modelforge.config import load_config
    from modelforge.training.recipe import train

    folder.mkdir(parents=True, exist_ok=True)
    sst2 = folder / "sst2"
    sst2.mkdir(exist_ok=True)
    pd.read_csv(SHARED / "sst2" / "train.csv").sample(8000, random_state=0).to_csv(sst2 / "train.csv", index=False)
    pd.read_csv(SHARED / "sst2" / "validation.csv").to_csv(sst2 / "test.csv", index=False)
    files = pd.read_csv(SHARED / "fsdd" / "files.csv")
    files.assign(path=[str(SHARED / "fsdd" / p) for p in files["path"]]).to_csv(folder / "fsdd.csv", index=False)
    configs = {
        "breast_cancer-mlp": {
            "task": "classification",
            "data": {"train": str(ROOT / "examples" / "data" / "breast_cancer.csv"), "target": "diagnosis"},
            "model": {"type": "mlp", "hidden": [256, 128]},
            "train": {"epochs": 20},
        },
        "digits-cnn": {
            "task": "classification",
            "data": {"train": str(ROOT / "examples" / "data" / "digits.npz"), "target": "y"},
            "features": [{"name": "x", "type": "image"}],
            "model": {"type": "cnn", "channels": [16, 32]},
            "train": {"epochs": 8, "lr": 3e-3},
        },
        "sst2-lstm": {
            "task": "classification",
            "data": {"train": str(sst2 / "train.csv"), "test": str(sst2 / "test.csv"), "target": "label"},
            "features": [{"name": "text", "type": "text", "max_length": 48, "vocab_size": 20000}],
            "model": {"type": "lstm", "embedding_dim": 128, "hidden": 128},
            "train": {"epochs": 3, "batch_size": 128, "lr": 3e-3},
        },
        "fsdd-audio_cnn": {
            "task": "classification",
            "data": {"train": str(folder / "fsdd.csv"), "target": "label", "split": {"column": "split", "valid": 0.1}},
            "features": [{"name": "path", "type": "audio", "n_mels": 32, "hop_ms": 15, "normalize": "utterance"}],
            "model": {"type": "audio_cnn", "channels": [16, 32, 64]},
            "train": {"epochs": 8, "lr": 3e-3},
        },
    }
    runs = []
    for name, config in configs.items():
        out = folder / name
        if not (out / "model.json").exists():
            train(load_config(config), out, show_progress=False)
        print(f"{name}: {auto_line(out)}", flush=True)
        runs.append(out)
    return runs


def int8_table(folder: Path, threads: int) -> str:
    """torch / frozen / onnx / onnx-int8 rows per trained run, with the held-out accuracy of each."""
    from modelforge.compress.benchmark import ENGINES, benchmark_run, markdown_table
    from modelforge.errors import ModelforgeError
    from modelforge.export.recipe import export_run

    tables = []
    for run in trained_runs(folder):
        export_run(run, "onnx")
        rows = []
        for engine in ENGINES:
            try:
                rows.append(benchmark_run(run, engine, threads))
            except ModelforgeError as exc:
                print(f"{run.name}: no {engine} row ({exc})")
        tables.append(markdown_table(rows))
    return "\n".join(tables)


def main() -> None:
    load_families()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS.names()))
    parser.add_argument("--rows", type=int, default=300, help="batch-1 calls timed per engine")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--int8-runs", type=Path, help="folder for the trained runs of the int8 accuracy table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print_header()
    print(f"onnxruntime {__import__('onnxruntime').__version__}; {args.threads} thread(s)")
    print(
        "| model | parity (max abs) | eager p50 / p95 ms | frozen p50 / p95 ms | onnxruntime p50 / p95 ms "
        "| eager / ort (p50) | batch-64 rows/s eager / frozen / ort |"
    )
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models.split(","):
            if name not in SPECS and name != "gpt":
                print(f"| {name} | not measured here (exported by its own task package) | | | | | |")
                continue
            try:
                r = measure(name, args.rows, Path(folder))
            except ImportError as exc:  # hf_encoder without its weights package
                print(f"| {name} | not measured: {exc} | | | | | |")
                continue
            eager, ort = r["eager"], r["onnxruntime"]
            frozen = r.get("frozen")
            frozen_cell = f"{frozen[0]:.3f} / {frozen[1]:.3f}" if frozen else f"— ({r['frozen_note'] or 'n/a'})"
            rates = (
                f"{eager[2]:,.0f} / {frozen[2]:,.0f} / {ort[2]:,.0f}"
                if frozen
                else f"{eager[2]:,.0f} / — / {ort[2]:,.0f}"
            )
            print(
                f"| {name} | {r['parity']:.1e} | {eager[0]:.3f} / {eager[1]:.3f} | {frozen_cell} "
                f"| {ort[0]:.3f} / {ort[1]:.3f} | {eager[0] / ort[0]:.2f}× | {rates} |",
                flush=True,
            )
    if args.int8_runs:
        print(int8_table(args.int8_runs, args.threads))


if __name__ == "__main__":
    main()
