"""A GPT run exported to ONNX with its KV cache as graph inputs/outputs: `generate --engine onnx`
decodes step by step in onnxruntime and writes the eager run's text (greedy and seeded sampling)."""

from __future__ import annotations

from pathlib import Path

from cli_runner import modelforge
from modelforge.export.gpt_onnx import GRAPH_INPUTS, GRAPH_OUTPUTS
from modelforge.export.onnx import onnx_session


def test_generate_with_the_onnx_engine_writes_the_eager_text(tiny_run: Path) -> None:
    exported = modelforge("export", str(tiny_run), "--format", "onnx")
    assert exported.returncode == 0, exported.stderr
    assert "max abs diff" in exported.stdout and (tiny_run / "model.onnx").exists()
    session = onnx_session(tiny_run / "model.onnx")
    assert [i.name for i in session.get_inputs()] == GRAPH_INPUTS
    assert [o.name for o in session.get_outputs()] == GRAPH_OUTPUTS
    # 40 new tokens after a 10-character prompt pass the 32-position context: the window slides
    for sampling in (["--temperature", "0"], ["--temperature", "0.9", "--top-k", "8", "--seed", "4"]):
        common = ["generate", str(tiny_run), "--prompt", "ROMEO: he ", "--max-new-tokens", "40", *sampling]
        eager, onnx = modelforge(*common), modelforge(*common, "--engine", "onnx")
        assert eager.returncode == 0 and onnx.returncode == 0, onnx.stderr
        assert onnx.stdout == eager.stdout


def test_a_rope_gpt_without_biases_exports_with_parity(tmp_path: Path) -> None:
    """Rotary positions are gathered per position inside the graph; the HF export refuses these runs."""
    import torch

    from modelforge.export.gpt_onnx import export_gpt_onnx
    from modelforge.models.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=30, layers=2, heads=2, width=16, context=12, rope=True, bias=False)).eval()
    prompts = torch.randint(0, 30, (7, 12), generator=torch.Generator().manual_seed(1))
    parity = export_gpt_onnx(model, prompts, tmp_path / "model.onnx")
    assert parity.max_abs_diff <= 1e-4, parity.describe()
