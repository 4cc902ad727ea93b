"""Frozen graphs for serving: every traceable model reproduces its eager outputs, others say why not."""

from __future__ import annotations

import pytest
import torch

from modelforge.data.preprocess import InputSpec
from modelforge.export.frozen import TRACEABLE_TYPES, FrozenModel, freeze_for_inference, random_inputs
from modelforge.export.parity import ExportError
from modelforge.models.registry import MODELS, build_model, load_families

load_families()

SPECS = {
    "tabular": InputSpec(numeric_dim=5, category_cardinalities=(4, 3), category_embedding_dims=(None, 2)),
    "text": InputSpec(text_vocab_size=50, text_length=12),
    "image": InputSpec(image_shape=(1, 16, 16)),
}
CASES = [(name, kind) for name in TRACEABLE_TYPES for kind in MODELS.get(name).accepts if kind in SPECS]


def trained_eval_model(name: str, spec: InputSpec) -> torch.nn.Module:
    """A model whose batch-norm statistics are not the identity, so folding them is exercised."""
    torch.manual_seed(0)
    model = build_model(name, spec, 3)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _ in range(3):
            batch = random_inputs(spec, 16, generator)
            model({k: v * 3 + 1 if v.is_floating_point() else v for k, v in batch.items()})
    return model.eval()


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_frozen_graph_matches_eager_at_every_batch_size(name: str, kind: str) -> None:
    spec = SPECS[kind]
    model = trained_eval_model(name, spec)
    frozen = freeze_for_inference(model, {"type": name}, spec, "fp32")
    assert isinstance(frozen, FrozenModel) and frozen.parity.ok and frozen.parity.rows > 0
    generator = torch.Generator().manual_seed(2)
    for rows in (1, 2, 33, 64):  # batch sizes other than the traced one
        inputs = random_inputs(spec, rows, generator)
        with torch.inference_mode():
            torch.testing.assert_close(frozen(inputs), model(inputs), atol=1e-4, rtol=1e-4)


def test_frozen_cnn_folds_batch_norm_and_drops_dropout() -> None:
    spec = SPECS["image"]
    model = trained_eval_model("cnn", spec)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    graph = str(freeze_for_inference(model, {"type": "cnn"}, spec, "fp32").graph.graph)
    assert "batch_norm" not in graph and "dropout" not in graph
    assert "aten::_convolution" in graph


def test_freezing_leaves_the_eager_model_as_it_was() -> None:
    spec = SPECS["image"]
    model = trained_eval_model("cnn", spec)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    freeze_for_inference(model, {"type": "cnn"}, spec, "fp32")
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
        assert value.is_contiguous(), key  # not left in channels-last layout


@pytest.mark.parametrize(
    ("info", "precision", "reason"),
    [
        ({"type": "lstm"}, "fp32", "not frozen for serving"),
        ({"type": "cnn", "quantization": "int8-dynamic"}, "fp32", "quantized"),
        ({"type": "cnn"}, "bf16", "bf16"),
    ],
)
def test_what_cannot_be_frozen_says_why(info: dict, precision: str, reason: str) -> None:
    spec = SPECS["text"] if info["type"] == "lstm" else SPECS["image"]
    model = build_model(info["type"], spec, 3).eval()
    with pytest.raises(ExportError, match=reason):
        freeze_for_inference(model, info, spec, precision)


class BakesBatchSize(torch.nn.Module):
    """`len(x)` is a Python int to a trace: the graph only works at the traced batch size."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, inputs: dict) -> torch.Tensor:
        image = inputs["image"]
        return image.flatten(1)[:, :3] * self.scale + torch.zeros(len(image), 3)


def test_a_graph_that_only_works_at_the_traced_size_is_refused() -> None:
    with pytest.raises(ExportError, match=r"returns shape \(7, 3\)"):
        freeze_for_inference(BakesBatchSize().eval(), {"type": "cnn"}, SPECS["image"], "fp32")
