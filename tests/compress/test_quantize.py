from __future__ import annotations

import json

import pytest
import torch

from modelforge.compress.quantize import dynamic_int8
from modelforge.compress.recipe import CompressOptions, compress_run
from modelforge.compress.variant import run_splits, score_model
from modelforge.run import load_run


def test_dynamic_int8_run_is_compact_and_reloads_exactly(mlp_run, tmp_path) -> None:
    out = compress_run(mlp_run, tmp_path / "int8", CompressOptions(quantize="int8-dynamic"))
    info = json.loads((out / "model.json").read_text())
    assert info["quantization"] == "int8-dynamic"
    assert (mlp_run / "model.safetensors").stat().st_size > 2.4 * (out / "model.safetensors").stat().st_size

    original, loaded = load_run(mlp_run), load_run(out)
    fresh = dynamic_int8(original.model)  # quantizing the float model again gives the same int8 values
    for name in ("encoders.tabular.body.0", "head"):
        saved_weight = loaded.model.get_submodule(name).weight()
        assert torch.equal(saved_weight.int_repr(), fresh.get_submodule(name).weight().int_repr())
    frame = original._prepare(original.config.data.train)
    assert abs(original.outputs(frame) - loaded.outputs(frame)).max() < 0.05
    evaluation = json.loads((out / "eval.json").read_text())
    assert (
        abs(evaluation["log_loss"] - score_model(loaded.model, loaded, run_splits(loaded).held_out)["log_loss"]) < 1e-9
    )


@pytest.mark.slow  # FX prepare/convert of a CNN: ~5 s; the calibration CLI path runs in make test
def test_static_int8_cnn_with_calibration_reloads_exactly(cnn_run, tmp_path) -> None:
    out = compress_run(cnn_run, tmp_path / "static", CompressOptions(quantize="int8-static"))
    loaded = load_run(out)
    evaluation = json.loads((out / "eval.json").read_text())
    recomputed = score_model(loaded.model, loaded, run_splits(loaded).held_out)
    assert abs(evaluation["log_loss"] - recomputed["log_loss"]) < 1e-9  # activation qparams and int8 weights restored
    float_accuracy = json.loads((cnn_run / "eval.json").read_text())["accuracy"]
    assert recomputed["accuracy"] > float_accuracy - 0.05
    assert (out / "model.safetensors").stat().st_size < 0.5 * (cnn_run / "model.safetensors").stat().st_size


def _round_trip(model_type: str, spec, options: dict, path) -> tuple[torch.nn.Module, torch.nn.Module, float]:
    """Quantize a fresh model, save it compactly, load it back; also the file/float-size ratio."""
    from safetensors.torch import save_file

    from modelforge.compress.quantize import compact_state, example_inputs, load_quantized
    from modelforge.models import build_model

    torch.manual_seed(0)
    float_model = build_model(model_type, spec, 3, options).eval()
    quantized = dynamic_int8(float_model, [example_inputs(spec)])
    save_file(compact_state(quantized), str(path))
    rebuilt = load_quantized(build_model(model_type, spec, 3, options), path, {"quantization": "int8-dynamic"}, spec)
    float_bytes = 4 * sum(p.numel() for p in float_model.parameters())
    return quantized, rebuilt, path.stat().st_size / float_bytes


def test_lstm_dynamic_int8_quantizes_the_embedding_and_round_trips(tmp_path) -> None:
    from modelforge.data.preprocess import InputSpec

    spec = InputSpec(text_vocab_size=500, text_length=12)
    quantized, rebuilt, ratio = _round_trip("lstm", spec, {"embedding_dim": 16, "hidden": 24}, tmp_path / "m.st")
    assert not isinstance(quantized.encoders["text"].embedding, torch.nn.Embedding)  # int8 rows, not float
    tokens = {"text": torch.randint(1, 500, (4, 12))}
    tokens["text"][:, 9:] = 0  # padding: the encoder passes a trimmed (non-contiguous) slice to the table
    with torch.no_grad():
        assert torch.equal(quantized(tokens), rebuilt(tokens))
    assert ratio < 0.4  # int8 values plus per-row/per-tensor scales


def test_embedding_read_by_the_forward_stays_float(tmp_path) -> None:
    """The default text encoder reads `embedding.weight.dtype`: its table must stay float, and still load."""
    from modelforge.data.preprocess import InputSpec

    spec = InputSpec(numeric_dim=3, text_vocab_size=500, text_length=12)
    quantized, rebuilt, _ = _round_trip("mlp", spec, {"hidden": [16]}, tmp_path / "m.st")
    assert isinstance(quantized.encoders["text"].embedding, torch.nn.Embedding)
    inputs = {"numeric": torch.randn(4, 3), "text": torch.randint(1, 500, (4, 12))}
    with torch.no_grad():
        assert torch.equal(quantized(inputs), rebuilt(inputs))
