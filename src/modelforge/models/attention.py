"""Scaled dot-product attention for every model here, with one CPU exception for bf16 training."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
) -> torch.Tensor:
    """`F.scaled_dot_product_attention`, but in fp32 when training in bf16 on a CPU.

    torch 2.13's bf16 flash-attention backward on the CPU ran ~8× slower than its fp32 twin (GPT,
    context 64, head width 32, profiled on an AMX Xeon): slower than the bf16 matmuls around it gain.
    Inference and CUDA keep bf16, where its kernels are fast.
    """
    bf16 = q.dtype == torch.bfloat16 or v.dtype == torch.bfloat16 or torch.is_autocast_cpu_enabled()
    if q.device.type != "cpu" or not bf16 or not torch.is_grad_enabled():
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal)
    with torch.autocast("cpu", enabled=False):
        y = F.scaled_dot_product_attention(
            q.float(), k.float(), v.float(), attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal
        )
    return y.to(torch.bfloat16)
