"""The bf16 CPU training path of `attention` against torch's scaled_dot_product_attention in fp32."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from modelforge.models import attention as attention_module
from modelforge.models.attention import attention


def bf16_leaves(*shapes: tuple[int, ...]) -> list[torch.Tensor]:
    return [torch.randn(shape).bfloat16().requires_grad_() for shape in shapes]


def outputs_and_grads(y: torch.Tensor, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    weights = torch.linspace(-1, 1, y.numel()).view(y.shape)  # a loss that weighs every output differently
    return [y.float(), *(g.float() for g in torch.autograd.grad((y.float() * weights).sum(), inputs))]


MASKS = {
    "causal": {"is_causal": True},
    "none": {},
    "bool keys": {"attn_mask": torch.tensor([True, True, False, True, False, True, True])[None, None, None, :]},
    "float": {"attn_mask": torch.randn(2, 3, 7, 7, generator=torch.Generator().manual_seed(1))},
}


@pytest.mark.parametrize("mask", list(MASKS))
@pytest.mark.parametrize("via_fused_kernel", [False, True])
def test_bf16_training_attention_matches_fp32_sdpa(
    mask: str, via_fused_kernel: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    if via_fused_kernel:  # past the memory bound the path goes back to SDPA in fp32
        monkeypatch.setattr(attention_module, "MATH_PATH_MAX_SCORES", 0)
    q, k, v = bf16_leaves((2, 3, 7, 16), (2, 3, 7, 16), (2, 3, 7, 8))
    y = attention(q, k, v, **MASKS[mask])
    assert y.dtype == torch.bfloat16 and y.shape == (2, 3, 7, 8)
    reference = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), **MASKS[mask])
    ours, theirs = outputs_and_grads(y, [q, k, v]), outputs_and_grads(reference, [q, k, v])
    for a, b in zip(ours, theirs, strict=True):
        assert torch.allclose(a, b, atol=0.05, rtol=0.05), (a - b).abs().max()
    if mask == "causal":  # the first query sees only the first key
        assert torch.allclose(y[:, :, 0].float(), v[:, :, 0].float())


def test_inference_and_fp32_keep_sdpa_exactly() -> None:
    q, k, v = (torch.randn(1, 2, 5, 8) for _ in range(3))
    assert torch.equal(attention(q, k, v, is_causal=True), F.scaled_dot_product_attention(q, k, v, is_causal=True))
    with torch.no_grad():
        bq, bk, bv = q.bfloat16(), k.bfloat16(), v.bfloat16()
        assert torch.equal(attention(bq, bk, bv), F.scaled_dot_product_attention(bq, bk, bv))
