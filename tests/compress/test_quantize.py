from __future__ import annotations

import json

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


def test_static_int8_cnn_with_calibration_reloads_exactly(cnn_run, tmp_path) -> None:
    out = compress_run(cnn_run, tmp_path / "static", CompressOptions(quantize="int8-static"))
    loaded = load_run(out)
    evaluation = json.loads((out / "eval.json").read_text())
    recomputed = score_model(loaded.model, loaded, run_splits(loaded).held_out)
    assert abs(evaluation["log_loss"] - recomputed["log_loss"]) < 1e-9  # activation qparams and int8 weights restored
    float_accuracy = json.loads((cnn_run / "eval.json").read_text())["accuracy"]
    assert recomputed["accuracy"] > float_accuracy - 0.05
    assert (out / "model.safetensors").stat().st_size < 0.5 * (cnn_run / "model.safetensors").stat().st_size


def test_lstm_dynamic_int8_round_trips_through_compact_tensors(tmp_path) -> None:
    from safetensors.torch import save_file

    from modelforge.compress.quantize import compact_state, load_quantized
    from modelforge.data.preprocess import InputSpec
    from modelforge.models import build_model

    spec = InputSpec(text_vocab_size=50, text_length=12)
    options = {"embedding_dim": 16, "hidden": 24}
    torch.manual_seed(0)
    quantized = dynamic_int8(build_model("lstm", spec, 3, options).eval())
    save_file(compact_state(quantized), str(tmp_path / "model.safetensors"))
    rebuilt = load_quantized(
        build_model("lstm", spec, 3, options), tmp_path / "model.safetensors", {"quantization": "int8-dynamic"}, spec
    )
    tokens = {"text": torch.randint(1, 50, (4, 12))}
    with torch.no_grad():
        assert torch.equal(quantized(tokens), rebuilt(tokens))
    assert (tmp_path / "model.safetensors").stat().st_size < 0.6 * 4 * sum(
        p.numel() for p in build_model("lstm", spec, 3, options).parameters()
    )
