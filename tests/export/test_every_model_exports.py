"""Every registered model exports to ONNX with parity ≤ 1e-4 (fp32), built small from the specs of
tests/models/test_every_model.py. Models over input groups are checked at batch 1 and 7 of
their shortest and longest rows and on one whole batch; GPT decodes step by step through its
KV-cache graph; recommenders score id pairs; generators decode latents. A model that cannot be
exported goes in NOT_EXPORTABLE with its one-line reason; a family whose task package exports it
itself goes in EXPORTED_BY_THEIR_TASK (its task must name an onnx exporter).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from modelforge.data.preprocess import InputSpec
from modelforge.export.frozen import random_inputs
from modelforge.export.gpt_onnx import export_gpt_onnx
from modelforge.export.graphs import export_decoder_onnx, export_scorer_onnx
from modelforge.export.onnx import export_model_onnx
from modelforge.export.parity import Parity
from modelforge.export.torchscript import export_torchscript
from modelforge.models.generative import ImageGenerationSpec
from modelforge.models.recommend import InteractionSpec
from modelforge.models.registry import MODELS, load_families
from models.test_every_model import CASES, Case, build, case_of  # tests/ is on sys.path (conftest)

load_families()

# name → the one-line reason it is not exported
NOT_EXPORTABLE: dict[str, str] = {
    "ctc_rnn": "task speech-recognition has no export yet (its task refuses `export` in one line)",
}
# families whose task package exports them itself (Task.onnx_export) and tests that export there
EXPORTED_BY_THEIR_TASK = {
    "seq2seq_transformer": "modelforge.seq2seq.onnx, tests/seq2seq",
    "detector": "modelforge.detection.export, tests/detection",
}
TOLERANCE = 1e-4
ROWS = 24


def varied_sample(spec: InputSpec, rows: int = ROWS) -> dict[str, torch.Tensor]:
    """Inputs of the spec with text rows of every length from 1 token to the full length."""
    sample = random_inputs(spec, rows, torch.Generator().manual_seed(0))
    if "text" in sample:
        low = 1000 if spec.text_tokenizer == "hf" else 1
        text = torch.randint(low, spec.text_vocab_size, (rows, spec.text_length), generator=torch.Generator())
        lengths = torch.arange(rows) % spec.text_length + 1
        sample["text"] = text.masked_fill(torch.arange(spec.text_length)[None, :] >= lengths[:, None], 0)
    return sample


def export_case(name: str, case: Case, dest: Path) -> Parity:
    model = build(name, case).eval()
    if isinstance(case.spec, InputSpec):
        return export_model_onnx(model, varied_sample(case.spec), dest)
    if isinstance(case.spec, InteractionSpec):
        inputs = case.inputs()
        tables = {
            "user_features": torch.randn(case.spec.n_users, 2),
            "item_features": torch.randn(case.spec.n_items, 3),
        }
        users = torch.arange(ROWS) % case.spec.n_users
        items = (torch.arange(ROWS) * 7) % case.spec.n_items
        assert set(inputs) == {"user", "item", *tables}
        return export_scorer_onnx(model, tables, {"user": users, "item": items}, dest)
    if isinstance(case.spec, ImageGenerationSpec):
        return export_decoder_onnx(model, dest, rows=ROWS)
    if name != "gpt":
        pytest.fail(
            f"{name}: no export recipe for {type(case.spec).__name__} here; add one or list it in NOT_EXPORTABLE"
        )
    vocab, context = case.output_dim, case.options["context"]
    prompts = torch.randint(0, vocab, (7, context), generator=torch.Generator().manual_seed(0))
    return export_gpt_onnx(model, prompts, dest)


EXPORTED = [name for name in MODELS.names() if name not in NOT_EXPORTABLE and name not in EXPORTED_BY_THEIR_TASK]


@pytest.mark.parametrize("name", EXPORTED)
def test_every_model_exports_to_onnx_with_parity(name: str, tmp_path: Path) -> None:
    parity = export_case(name, case_of(name), tmp_path / "model.onnx")
    print(f"{name}: {parity.describe()}")
    assert parity.max_abs_diff <= TOLERANCE, parity.describe()
    assert (tmp_path / "model.onnx").stat().st_size > 0


def test_every_registered_model_is_exported_or_listed_with_a_reason() -> None:
    from modelforge.tasks import TASKS

    listed = {*CASES, *NOT_EXPORTABLE, *EXPORTED_BY_THEIR_TASK}
    unlisted = [name for name in MODELS.names() if name not in listed]
    assert not unlisted, f"add a case to tests/models/test_every_model.py or a reason to NOT_EXPORTABLE: {unlisted}"
    assert all(reason and "\n" not in reason for reason in NOT_EXPORTABLE.values())
    for name in EXPORTED_BY_THEIR_TASK:
        owners = [TASKS.get(t) for t in TASKS.names() if name in TASKS.get(t).models]
        assert owners and all("onnx" in t.export_formats and t.onnx_export for t in owners), name


class _Run:
    def __init__(self, model: Any) -> None:
        self.model, self.model_info = model, {"type": "test"}


SUPERVISED = [name for name in EXPORTED if name in CASES and isinstance(CASES[name].spec, InputSpec)]


@pytest.mark.parametrize("name", SUPERVISED)
def test_models_over_input_groups_export_to_torchscript(name: str, tmp_path: Path) -> None:
    case = case_of(name)
    parity = export_torchscript(_Run(build(name, case).eval()), varied_sample(case.spec), tmp_path / "model.pt")
    assert parity.max_abs_diff <= TOLERANCE, parity.describe()


def test_audio_cnn_exports_when_its_pooled_grid_does_not_divide_the_spectrogram(tmp_path: Path) -> None:
    """ONNX has no adaptive pooling for such sizes (16×59 clips pooled to 2×4): the traced graph averages the bins."""
    spec = InputSpec(audio_shape=(1, 16, 59))
    model = build("audio_cnn", CASES["audio_cnn"], spec).eval()
    parity = export_model_onnx(model, varied_sample(spec), tmp_path / "model.onnx")
    assert parity.max_abs_diff <= TOLERANCE, parity.describe()


def test_an_out_that_exists_is_refused_in_one_line(mlp_run: Path, tmp_path: Path, cli, assert_one_line_error) -> None:
    taken = tmp_path / "model.onnx"
    taken.write_text("mine")
    assert_one_line_error(cli("export", mlp_run, "--format", "onnx", "--out", taken), "already exists")
    assert taken.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
