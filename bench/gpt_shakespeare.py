"""GPT on tinyshakespeare (char level): modelforge's LM loop against a plain fp32 PyTorch loop.

    .venv/bin/python bench/gpt_shakespeare.py            # the reference: 2,000 steps
    .venv/bin/python bench/gpt_shakespeare.py --steps 200  # a quick look
    .venv/bin/python bench/gpt_shakespeare.py --set model.rope=false   # learned positions instead of RoPE

Reference configuration (../shared/datasets/README.md), read from examples/shakespeare_char.yaml:
4 layers, 4 heads, 128 wide, context 64, batch 12, lr 1e-3 cosine to 1e-4 after 100 warm-up
steps, AdamW (0.9, 0.99), weight decay 0.1, grad clip 1, no dropout; no precision, threads or
position keys, so modelforge's defaults decide (`auto` precision and threads, rotary positions).
Both loops train the same `GPT` module on the same text for the same number of steps.

1. ours: `modelforge.train` with that config: val loss at the last step (whole validation split),
   training tokens/s (periodic evaluations excluded) and the whole call's wall-clock;
2. baseline: a plain script: read and char-tokenize the text, train with torch's default threads,
   fp32, foreach AdamW, LambdaLR, no compile, then the same whole-split val loss; its training
   tokens/s and whole wall-clock;
3. the floors: tokens/s ≥ 1.5× the baseline on a bf16-capable CPU (1.15× on AVX2-only), whole
   wall-clock ≥ 1.2×, val loss ≤ 1.886 at 2,000 steps;
4. KV-cache generation tokens/s against recomputing the full context for every token.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from _machine import auto_line, print_header
from torch.nn import functional as F

import modelforge
from modelforge.config import RunConfig, load_config
from modelforge.hardware import cpu_info
from modelforge.models.gpt import GPT, GPTConfig
from modelforge.text.data import random_windows
from modelforge.text.generate import Generator, load_generator
from modelforge.text.run import sequence_loss

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "tinyshakespeare" / "input.txt"
EXAMPLE = ROOT / "examples" / "shakespeare_char.yaml"
REFERENCE_VAL_LOSS = 1.886


def reference_config(data: Path, steps: int, overrides: list[str]) -> RunConfig:
    """examples/shakespeare_char.yaml (the reference configuration) on `data`, for `steps` steps."""
    sets = [f"data.train={data}", f"train.max_steps={steps}", f"train.eval_every={max(1, steps // 4)}"]
    return load_config(EXAMPLE, [*sets, *overrides])


def baseline_loop(model: GPT, tokens: np.ndarray, steps: int) -> float:
    """A plain fp32 loop on the same schedule for `steps` steps; returns its training seconds."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)

    def factor(step: int) -> float:
        if step < 100:
            return (step + 1) / 101
        progress = min(1.0, (step - 100) / max(1, steps - 100))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    generator = torch.Generator().manual_seed(0)
    model.train()
    started = time.perf_counter()
    for _ in range(steps):
        inputs, targets = random_windows(tokens, 12, 64, generator)
        logits = model(inputs)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - started


def baseline_script(data: Path, config: GPTConfig, steps: int) -> tuple[float, float, float]:
    """The whole plain script: read, tokenize, train, evaluate. (val loss, training s, wall s)."""
    started = time.perf_counter()
    text = data.read_text(encoding="utf-8")
    vocabulary = {char: index for index, char in enumerate(sorted(set(text)))}
    tokens = np.array([vocabulary[char] for char in text], dtype=np.int64)
    cut = int(len(tokens) * 0.9)
    torch.manual_seed(0)
    model = GPT(replace(config, vocab_size=len(vocabulary)))
    train_seconds = baseline_loop(model, tokens[:cut], steps)
    val_loss = sequence_loss(model.eval(), tokens[cut:], config.context, 12)
    return val_loss, train_seconds, time.perf_counter() - started


def generation_speed(generator: Generator, tokens: int) -> float:
    started = time.perf_counter()
    text = generator.generate("ROMEO:", tokens, temperature=0)
    assert len(text) == tokens
    return tokens / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--generate-tokens", type=int, default=500)
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="config override, e.g. model.rope=false"
    )
    args = parser.parse_args()
    default_threads = torch.get_num_threads()
    print_header()

    bf16_cpu = bool({"avx512_bf16", "amx_bf16"} & set(cpu_info()[1]))
    floor = 1.5 if bf16_cpu else 1.15
    with tempfile.TemporaryDirectory() as folder:
        config = reference_config(args.data, args.steps, args.overrides)
        print(f"model: {config.model.model_dump(exclude_none=True)}")
        started = time.perf_counter()
        run = modelforge.train(config, Path(folder) / "ours")
        ours_wall = time.perf_counter() - started
        ours = run.metrics
        print(
            f"ours      : {ours['steps']} steps, val loss {ours['val_loss']:.4f}, "
            f"{ours['tokens_per_second']:,.0f} tokens/s training, {ours_wall:.1f} s whole call"
        )
        print(f"ours      : {auto_line(Path(folder) / 'ours')}")

        torch.set_num_threads(default_threads)
        baseline_loss, train_seconds, baseline_wall = baseline_script(args.data, run.model.config, args.steps)
        baseline_rate = args.steps * 12 * 64 / train_seconds
        print(
            f"baseline  : {args.steps} steps, val loss {baseline_loss:.4f}, {baseline_rate:,.0f} tokens/s training, "
            f"{baseline_wall:.1f} s whole script ({default_threads} threads, fp32)"
        )
        speed = ours["tokens_per_second"] / baseline_rate
        print(
            f"tokens/s ratio ours/baseline: {speed:.2f}x (floor {floor}x on this "
            f"{'bf16-capable' if bf16_cpu else 'AVX2-only'} CPU) -> {'met' if speed >= floor else 'NOT met'}"
        )
        whole = baseline_wall / ours_wall
        print(f"whole-command ratio baseline/ours: {whole:.2f}x (floor 1.2x) -> {'met' if whole >= 1.2 else 'NOT met'}")
        print(
            f"val loss at {args.steps} steps: ours {ours['val_loss']:.4f}, baseline {baseline_loss:.4f} "
            f"(floor {REFERENCE_VAL_LOSS}) -> {'met' if ours['val_loss'] <= REFERENCE_VAL_LOSS else 'NOT met'}"
        )

        if args.generate_tokens > 0:
            threads_used = json.loads((run.path / "environment.json").read_text()).get("auto", {}).get("threads")
            torch.set_num_threads(threads_used or default_threads)
            cached = load_generator(run.path)
            recompute = Generator(cached.model, cached.tokenizer, use_cache=False)
            fast = generation_speed(cached, args.generate_tokens)
            slow = generation_speed(recompute, args.generate_tokens)
            print(
                f"generation ({args.generate_tokens} tokens, greedy, {torch.get_num_threads()} thread(s)): "
                f"KV cache {fast:,.0f} tokens/s, full recompute {slow:,.0f} tokens/s, {fast / slow:.2f}x"
            )
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
