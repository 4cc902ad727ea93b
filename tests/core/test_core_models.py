"""Every registered model: forward, backward, and a save/load round trip on a tiny input."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from modelforge.data.preprocess import InputSpec
from modelforge.models.registry import MODELS, build_model, load_families, model_options

load_families()

SPECS = {
    "tabular": InputSpec(numeric_dim=5, category_cardinalities=(4, 3), category_embedding_dims=(None, 2)),
    "text": InputSpec(text_vocab_size=50, text_length=12),
    "image": InputSpec(image_shape=(1, 16, 16)),
}


def tiny_inputs(spec: InputSpec, n: int = 4) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    inputs: dict[str, torch.Tensor] = {}
    if spec.numeric_dim:
        inputs["numeric"] = torch.randn(n, spec.numeric_dim, generator=generator)
    if spec.category_cardinalities:
        inputs["category"] = torch.stack(
            [torch.randint(0, c, (n,), generator=generator) for c in spec.category_cardinalities], dim=1
        )
    if spec.text_vocab_size:
        inputs["text"] = torch.randint(2, spec.text_vocab_size, (n, spec.text_length), generator=generator)
        inputs["text"][0, 5:] = 0  # padding
    if spec.image_shape:
        inputs["image"] = torch.randn(n, *spec.image_shape, generator=generator)
    return inputs


CORE = [name for name in MODELS.names() if set(MODELS.get(name).accepts) & set(SPECS) and name not in ("hf_encoder",)]
CASES = [(name, kind) for name in CORE for kind in MODELS.get(name).accepts if kind in SPECS][:40]


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_forward_backward_and_round_trip(name: str, kind: str, tmp_path) -> None:
    spec = SPECS[kind]
    torch.manual_seed(0)
    model = build_model(name, spec, 3)
    inputs = tiny_inputs(spec)
    out = model(inputs)
    assert out.shape == (4, 3)
    out.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    model.eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "m.safetensors"))
    clone = build_model(name, spec, 3)
    clone.load_state_dict(load_file(str(tmp_path / "m.safetensors")))
    clone.eval()
    torch.testing.assert_close(clone(inputs), model(inputs))


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_bf16_autocast_forward_and_backward(name: str, kind: str) -> None:
    """train.precision bf16 runs every model under CPU autocast (oneDNN lacks some bf16 kernels, e.g. LSTM)."""
    spec = SPECS[kind]
    torch.manual_seed(0)
    model = build_model(name, spec, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(tiny_inputs(spec))
    assert out.shape == (4, 3) and torch.isfinite(out.float()).all()
    out.float().sum().backward()


def test_mixed_inputs_are_fused() -> None:
    spec = InputSpec(numeric_dim=2, category_cardinalities=(3,), text_vocab_size=20, text_length=6)
    model = build_model("lstm", spec, 2)
    assert set(model.encoders) == {"text", "tabular"}
    assert model(tiny_inputs(spec)).shape == (4, 2)


def test_every_model_lists_its_options_and_description() -> None:
    for name in MODELS.names():
        entry = MODELS.get(name)
        assert entry.description and entry.accepts
        assert isinstance(model_options(name), list)
    assert {"hidden", "activation", "dropout", "init"} <= set(model_options("mlp"))


@pytest.mark.parametrize("activation", ["relu", "gelu", "sigmoid", "tanh"])
@pytest.mark.parametrize("init", ["xavier", "he", "default"])
def test_mlp_activations_and_inits(activation: str, init: str) -> None:
    torch.manual_seed(0)
    model = build_model("mlp", SPECS["tabular"], 2, {"activation": activation, "init": init, "norm": "batch"})
    assert torch.isfinite(model(tiny_inputs(SPECS["tabular"]))).all()
