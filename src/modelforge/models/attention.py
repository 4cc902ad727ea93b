"""Scaled dot-product attention for every model here, with one CPU exception for bf16 training."""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

# The bf16 training path materialises (rows, queries, keys) scores; past this many elements (256 MiB
# of bf16 scores) it goes back to the memory-lean fused kernel in fp32.
MATH_PATH_MAX_SCORES = 2**27


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
) -> torch.Tensor:
    """`F.scaled_dot_product_attention`, but not through its bf16 kernel when training in bf16 on a CPU.

    torch 2.13's bf16 flash-attention backward on the CPU ran ~8× slower than its fp32 twin (GPT,
    context 64, head width 32, profiled on an AMX Xeon). Batched bf16 matmuls and a softmax run
    faster than either: measured forward+backward against the fp32 kernel, 1.02 against 1.28 ms at
    GPT's shapes (12×4 heads, 64 positions, width 32), 22 against 62 ms at 32×12 heads × 128 × 64.
    Inference and CUDA keep `scaled_dot_product_attention`, whose kernels are fast there.
    """
    bf16 = q.dtype == torch.bfloat16 or v.dtype == torch.bfloat16 or torch.is_autocast_cpu_enabled()
    if q.device.type != "cpu" or not bf16 or not torch.is_grad_enabled():
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal)
    with torch.autocast("cpu", enabled=False):
        rows = math.prod(q.shape[:-2])
        if rows * q.shape[-2] * k.shape[-2] > MATH_PATH_MAX_SCORES:
            y = F.scaled_dot_product_attention(
                q.float(), k.float(), v.float(), attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal
            )
            return y.to(torch.bfloat16)
        return bf16_math_attention(q, k, v, attn_mask, dropout_p, is_causal)


def bf16_math_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None,
    dropout_p: float,
    is_causal: bool,
) -> torch.Tensor:
    """softmax(q kᵀ / √d + mask) v in bf16 batched matmuls; `attn_mask` as SDPA takes it (True or
    an additive float where a query may attend), `is_causal` as SDPA's (query i sees keys ≤ i)."""
    *lead, queries, width = q.shape
    keys = k.shape[-2]
    q, k, v = (t.to(torch.bfloat16).reshape(-1, t.shape[-2], t.shape[-1]) for t in (q, k, v))
    bias = score_bias(attn_mask, is_causal, queries, keys, q.device)
    if bias is None:
        scores = torch.bmm(q, k.transpose(1, 2)).mul_(width**-0.5)
    else:
        bias = bias.expand(*lead, queries, keys).reshape(-1, queries, keys)
        scores = torch.baddbmm(bias, q, k.transpose(1, 2), alpha=width**-0.5)
    probs = torch.softmax(scores, dim=-1)
    if dropout_p:
        probs = F.dropout(probs, dropout_p)
    return torch.bmm(probs, v).view(*lead, queries, v.shape[-1])


def score_bias(
    attn_mask: torch.Tensor | None, is_causal: bool, queries: int, keys: int, device: torch.device
) -> torch.Tensor | None:
    """The additive bf16 bias (0 where attending, -inf where not) of a mask and/or causality; None if neither."""
    bias = None
    if attn_mask is not None:
        bias = attn_mask.to(torch.bfloat16)
        if attn_mask.dtype == torch.bool:
            bias = torch.zeros_like(bias).masked_fill_(~attn_mask, -math.inf)
    if is_causal:
        causal = torch.ones(queries, keys, dtype=torch.bool, device=device).tril()
        causal_bias = torch.zeros(queries, keys, dtype=torch.bfloat16, device=device).masked_fill_(~causal, -math.inf)
        bias = causal_bias if bias is None else bias + causal_bias
    return bias
