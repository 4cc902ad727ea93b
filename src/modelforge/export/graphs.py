"""ONNX graphs for the tasks whose models are not one forward over input groups:

- recommendation (`mf`, `two_tower`): `score(user, item) -> score`, the id-indexed feature
  tables of a two-tower run folded into the graph as constants, so a caller sends ids only;
- generation (`vae`, `gan`): the decoder, `decode(z, labels) -> images` in [0, 1]
  (`labels` only for class-conditioned runs).

Each export is checked like the supervised one: the graph against the eager module at
several batch sizes (`check_batches`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from modelforge.errors import ModelforgeError
from modelforge.export.onnx import OPSET, check_batches, exporting, onnx_session
from modelforge.export.parity import Parity


class PairScorer(nn.Module):
    """A recommender's score of (user, item) id pairs, its feature tables looked up inside."""

    def __init__(self, model: nn.Module, tables: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.model = model
        self.has_user_features = "user_features" in tables
        self.has_item_features = "item_features" in tables
        for name in ("user_features", "item_features"):
            self.register_buffer(name, tables[name] if name in tables else torch.zeros(0), persistent=False)

    def forward(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        batch = {"user": user, "item": item}
        if self.has_user_features:
            batch["user_features"] = self.user_features[user]
        if self.has_item_features:
            batch["item_features"] = self.item_features[item]
        return self.model(batch)  # type: ignore[no-any-return]


class Decoder(nn.Module):
    """A generator's latent-to-image map: the VAE's decoder (through the sigmoid) or the GAN's generator."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.conditional = model.spec.n_classes > 0  # type: ignore[union-attr,operator]

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        labels = labels if self.conditional else None
        if hasattr(self.model, "decode_logits"):
            return torch.sigmoid(self.model.decode_logits(z, labels))  # type: ignore[operator]
        return self.model.generator(z, labels)  # type: ignore[operator,no-any-return]


def export_module(module: nn.Module, sample: dict[str, torch.Tensor], dest: Path, output: str) -> Parity:
    """Trace `module` (inputs named as `sample`'s keys, in order; dynamic batch) to `dest` and check it."""
    module = module.eval()
    names = list(sample)
    with exporting(), torch.no_grad():
        torch.onnx.export(
            module,
            tuple(sample[n][:2] for n in names),
            str(dest),
            input_names=names,
            output_names=[output],
            dynamic_axes={name: {0: "batch"} for name in [*names, output]},
            opset_version=OPSET,
            dynamo=False,
        )
    session = onnx_session(dest)

    def run_graph(batch: dict[str, torch.Tensor]) -> Any:
        return session.run(None, {n: batch[n].numpy() for n in names})[0]

    return check_batches(lambda batch: module(*(batch[n] for n in names)).float().numpy(), run_graph, sample)


def export_scorer_onnx(model: nn.Module, tables: dict[str, torch.Tensor], pairs: dict[str, torch.Tensor], dest: Path):
    """`pairs`: real {user, item} id rows (int64) for the trace and the parity check."""
    return export_module(PairScorer(model, tables), pairs, dest, "score")


def export_decoder_onnx(model: nn.Module, dest: Path, rows: int = 64, seed: int = 0) -> Parity:
    """The decoder checked on `rows` latent draws (labels cycling through the classes)."""
    generator = torch.Generator().manual_seed(seed)
    sample = {"z": torch.randn(rows, model.latent, generator=generator)}  # type: ignore[arg-type]
    decoder = Decoder(model)
    if decoder.conditional:
        sample["labels"] = torch.arange(rows) % model.spec.n_classes  # type: ignore[union-attr,operator]
    return export_module(decoder, sample, dest, "images")


@dataclass
class OnnxPairScorer:
    """An exported recommender graph standing in for the run's module: called on {user, item}
    batches it scores the pairs; `score_all_items` gives the users × items matrix."""

    session: Any
    n_items: int

    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        feed = {"user": batch["user"].numpy().astype(np.int64), "item": batch["item"].numpy().astype(np.int64)}
        return torch.from_numpy(self.session.run(None, feed)[0])

    def eval(self) -> OnnxPairScorer:
        return self

    def score_all_items(self, users: np.ndarray) -> np.ndarray:
        items = np.arange(self.n_items, dtype=np.int64)
        rows = [
            self.session.run(None, {"user": np.full(self.n_items, user, dtype=np.int64), "item": items})[0]
            for user in users
        ]
        return np.stack(rows) if rows else np.zeros((0, self.n_items), dtype=np.float32)


@dataclass
class OnnxRecommenderPredictor:
    """`modelforge predict RUN --engine onnx` on a recommender run: its own `predict`, scored by the graph."""

    run: Any
    engine: str = "onnx (onnxruntime)"

    def predict(self, data: Any) -> Any:
        return self.run.predict(data)


def load_onnx_recommender(run_dir: str | Path, threads: int | None = None) -> OnnxRecommenderPredictor:
    return OnnxRecommenderPredictor(load_onnx_recommender_run(run_dir, threads))


def load_onnx_recommender_run(run_dir: str | Path, threads: int | None = None) -> Any:
    """The recommender run with its exported score(user, item) graph in place of the module."""
    from modelforge.training.recommend import load_recommender_run, model_item_count

    path = exported_graph(run_dir)
    run = load_recommender_run(run_dir)
    run.model = OnnxPairScorer(onnx_session(path, threads), model_item_count(run.model))
    return run


@dataclass
class OnnxSampler:
    """An exported decoder standing in for a generator run's module: `sample` draws the latents as
    the VAE's and GAN's own `sample` do (same generator, same order), then decodes in onnxruntime."""

    session: Any

    def sample(
        self, labels: torch.Tensor | None, n: int, generator: torch.Generator, temperature: float = 1.0
    ) -> torch.Tensor:
        latent = self.session.get_inputs()[0].shape[1]
        feed = {"z": (torch.randn(n, latent, generator=generator) * temperature).numpy()}
        if labels is not None:
            feed["labels"] = labels.numpy().astype(np.int64)
        return torch.from_numpy(self.session.run(None, feed)[0])


def load_onnx_generator_run(run_dir: str | Path, threads: int | None = None) -> Any:
    """The generator run with its exported decoder sampling (`generate`/`serve --engine onnx`)."""
    from modelforge.generation.run import load_generator_run

    run = load_generator_run(run_dir)
    run.model = OnnxSampler(onnx_session(exported_graph(run_dir), threads))
    return run


def exported_graph(run_dir: str | Path) -> Path:
    from modelforge.export.onnx import ONNX_FILE
    from modelforge.export.parity import ExportError

    path = Path(run_dir) / ONNX_FILE
    if not path.exists():
        raise ExportError(f"{path}: not found; run `modelforge export {run_dir} --format onnx` first")
    return path


# ----------------------------------------------------------------------------- from run directories
def export_recommender_run(run_dir: Path, dest: Path) -> Parity:
    from modelforge.training.recommend import load_recommender_run

    run = load_recommender_run(run_dir)
    users = [torch.full((len(items),), user) for user, items in sorted(run.seen.items())]
    items = [torch.from_numpy(items) for _, items in sorted(run.seen.items())]
    pairs = {"user": torch.cat(users)[:256].long(), "item": torch.cat(items)[:256].long()}
    return export_scorer_onnx(run.model, run.tables, pairs, dest)


def export_generator_run(run_dir: Path, dest: Path) -> Parity:
    from modelforge.generation.run import load_generator_run

    run = load_generator_run(run_dir)
    return export_decoder_onnx(run.model, dest)


def export_language_model_run(run_dir: Path, dest: Path) -> Parity:
    """The GPT with its KV cache as graph inputs/outputs, checked on windows of the run's own text."""
    from modelforge.export.gpt_onnx import export_gpt_onnx
    from modelforge.text.run import load_language_model_run

    run = load_language_model_run(run_dir)
    prompts = language_model_windows(run, rows=7)
    return export_gpt_onnx(run.model, prompts, dest)


def language_model_windows(run: Any, rows: int) -> torch.Tensor:
    """`rows` full-context windows of the run's training text (random ids when it is gone)."""
    from modelforge.text.data import read_corpus

    context, vocab = run.model.config.context, run.model.config.vocab_size
    try:
        text = read_corpus(str(run.config.data.train), run.config.data.text_column)
        ids = torch.tensor(run.tokenizer.encode(text[: 40 * context * rows]), dtype=torch.long)
    except (ModelforgeError, OSError):  # the corpus moved or was deleted: the graph is still checked
        ids = torch.zeros(0, dtype=torch.long)
    if len(ids) < rows * context:
        return torch.randint(0, vocab, (rows, context), generator=torch.Generator().manual_seed(0))
    starts = torch.linspace(0, len(ids) - context, rows).long()
    return torch.stack([ids[s : s + context] for s in starts])
