"""GPT: shapes, causality, weight tying, KV cache = full recompute, greedy, HF GPT-2 export parity."""

from __future__ import annotations

import pytest
import torch

from modelforge.models.gpt import RotateQueriesKeys, apply_rotary, rotary_tables
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


@pytest.mark.parametrize("rope", [False, True])
def test_batched_decode_at_different_positions_equals_one_row_at_a_time(rope: bool) -> None:
    model = tiny_gpt(rope=rope)
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10], [2]]
    rows = [2, 0, 3]  # rows of a shared 4-row cache, not in order
    shared, alone = model.new_cache(4), []
    with torch.no_grad():
        for prompt, row in zip(prompts, rows, strict=True):
            own = model.new_cache()
            expected = model(torch.tensor([prompt]), own)[0, -1]
            torch.testing.assert_close(model(torch.tensor([prompt]), shared.row(row))[0, -1], expected)
            alone.append(own)
        tokens = torch.tensor([7, 3, 11])
        positions = torch.tensor([len(p) for p in prompts])
        batched = model.decode(tokens, shared, torch.tensor(rows), positions)
        for i, own in enumerate(alone):
            torch.testing.assert_close(batched[i], model(tokens[i].view(1, 1), own)[0, -1], atol=1e-5, rtol=1e-5)
        with pytest.raises(ValueError, match="exceeds the model's context"):
            model.decode(tokens, shared, torch.tensor(rows), torch.tensor([24, 1, 1]))


def test_decode_batch_gives_each_generation_what_it_gets_alone() -> None:
    from modelforge.text.generate import DecodeBatch, Sampling

    generator = Generator(tiny_gpt(rope=True), build_tokenizer("char", 0).fit("abcdefgh"))
    cases = [
        ([1, 2, 3], Sampling(40, 0.0)),  # past the context of 24: the window slides
        ([4, 5, 6, 7, 8, 9], Sampling(25, 1.0, seed=3)),
        ([2], Sampling(1, 0.8, top_k=5, seed=1)),  # finished by its first token
        ([3] * 24, Sampling(20, 1.0, top_p=0.9, seed=7)),  # a full row at once; joins when a row frees
        ([5, 1], Sampling(9, 0.5, seed=11)),
    ]
    expected = [
        list(generator.token_ids(prompt, s.max_new_tokens, s.temperature, s.top_k, s.top_p, s.seed))
        for prompt, s in cases
    ]
    batch = DecodeBatch(generator, slots=3)
    got: dict[int, list[int]] = {}
    owner: dict[int, int] = {}  # id(decoding) -> case
    waiting = list(enumerate(cases))
    while waiting or batch.active:
        while waiting and batch.has_room:
            index, (prompt, sampling) = waiting.pop(0)
            decoding, token = batch.add(prompt, sampling)
            got[index], owner[id(decoding)] = [token], index
        assert len(batch.active) <= 3
        for decoding, token in batch.step():
            got[owner[id(decoding)]].append(token)
    assert [got[i] for i in range(len(cases))] == expected
    assert sorted(batch.free) == [0, 1, 2]  # every row given back


def test_fused_rotary_equals_the_plain_rotary_forward_and_backward() -> None:
    model = tiny_gpt().double().train()
    tokens = torch.randint(0, VOCAB, (3, 20))
    fused = model(tokens)  # no cache: queries and keys rotate in one RotateQueriesKeys node
    fused_grads = torch.autograd.grad(fused.pow(2).sum(), list(model.parameters()))
    plain = model(tokens, model.new_cache(3))  # the cache path rotates with apply_rotary
    plain_grads = torch.autograd.grad(plain.pow(2).sum(), list(model.parameters()))
    assert torch.allclose(fused, plain, atol=1e-12)
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(fused_grads, plain_grads, strict=True))


def test_rotate_queries_keys_backward_is_the_true_gradient() -> None:
    cos, sin = rotary_tables(5, 8)
    cos2 = torch.cat((cos, cos), dim=-1)[:, None, None].double()
    sin2 = torch.cat((-sin, sin), dim=-1)[:, None, None].double()
    projection = torch.randn(2, 5, 3, 2, 8, dtype=torch.double)
    slab = projection[:, :, :2].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: RotateQueriesKeys.apply(t, cos2, sin2), (slab,))
    queries = RotateQueriesKeys.apply(slab, cos2, sin2)[0]
    assert torch.allclose(queries, apply_rotary(slab[:, :, 0].transpose(1, 2), cos.double(), sin.double()))
