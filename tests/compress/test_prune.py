from __future__ import annotations

import copy
import json

import torch
from torch import nn

from modelforge.compress.prune import magnitude_prune, make_permanent, nonzero_share, structured_prune
from modelforge.compress.recipe import CompressOptions, compress_run
from modelforge.data.preprocess import InputSpec
from modelforge.models import build_model
from modelforge.run import load_run


def test_global_magnitude_pruning_is_permanent_and_hits_the_share() -> None:
    model = build_model("mlp", InputSpec(numeric_dim=20), 3, {"hidden": [32, 16]})
    magnitude_prune(model, 0.5, "global")
    make_permanent(model)
    assert not any(key.endswith(("weight_orig", "weight_mask")) for key in model.state_dict())
    assert abs(nonzero_share(model) - 0.5) < 0.01


def _structured_matches_masked_original(model_type: str, spec: InputSpec, options: dict, inputs: dict) -> None:
    torch.manual_seed(0)
    model = build_model(model_type, spec, 4, options).eval()
    for module in model.modules():  # non-trivial norm statistics, so slicing them is tested too
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    state, new_options = structured_prune(model, model_type, options, 0.5)
    small = build_model(model_type, spec, 4, new_options).eval()
    small.load_state_dict(state)

    # Zeroing the removed neurons/channels in the original must give exactly the small model.
    masked = copy.deepcopy(model)
    body = masked.encoders["tabular" if model_type == "mlp" else "image"].body
    layers = [m for m in body if isinstance(m, nn.Linear | nn.Conv2d)]
    norms = [m for m in body if isinstance(m, nn.BatchNorm2d)]
    small_body = small.encoders["tabular" if model_type == "mlp" else "image"].body
    small_layers = [m for m in small_body if isinstance(m, nn.Linear | nn.Conv2d)]
    with torch.no_grad():
        for index, (layer, kept_layer) in enumerate(zip(layers, small_layers, strict=True)):
            assert kept_layer.weight.shape[0] == layer.weight.shape[0] // 2
            importance = layer.weight.abs().flatten(1).sum(1)
            removed = importance.argsort()[: layer.weight.shape[0] - kept_layer.weight.shape[0]]
            layer.weight[removed] = 0
            if layer.bias is not None:
                layer.bias[removed] = 0
            if norms:
                norms[index].weight[removed] = 0
                norms[index].bias[removed] = 0
        assert torch.allclose(masked(inputs), small(inputs), atol=1e-5)
    assert sum(p.numel() for p in small.parameters()) < 0.5 * sum(p.numel() for p in model.parameters())


def test_structured_pruning_of_mlp_neurons_equals_zeroing_them() -> None:
    spec = InputSpec(numeric_dim=10)
    options = {"hidden": [32, 16], "dropout": 0.0}
    _structured_matches_masked_original("mlp", spec, options, {"numeric": torch.randn(5, 10)})


def test_structured_pruning_of_cnn_channels_equals_zeroing_them() -> None:
    spec = InputSpec(image_shape=(1, 8, 8))
    options = {"channels": [8, 16], "dropout": 0.0}
    _structured_matches_masked_original("cnn", spec, options, {"image": torch.randn(5, 1, 8, 8)})


def test_structured_run_records_smaller_sizes_and_loads(mlp_run, tmp_path) -> None:
    out = compress_run(
        mlp_run, tmp_path / "small", CompressOptions(prune=0.5, prune_method="structured", finetune_epochs=1)
    )
    info = json.loads((out / "model.json").read_text())
    assert info["options"]["hidden"] == [32, 16]
    loaded = load_run(out)
    assert loaded.config.model.options()["hidden"] == [32, 16]
    assert sum(p.numel() for p in loaded.model.parameters()) == info["parameters"] < 4097 / 2
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
    assert loaded.evaluate(loaded.config.data.train)["accuracy"] > 0.85


def test_magnitude_run_keeps_zeros_through_finetune(mlp_run, tmp_path) -> None:
    out = compress_run(mlp_run, tmp_path / "sparse", CompressOptions(prune=0.5, finetune_epochs=1))
    loaded = load_run(out)
    assert abs(nonzero_share(loaded.model) - 0.5) < 0.01
    assert json.loads((out / "eval.json").read_text())["accuracy"] > 0.85
