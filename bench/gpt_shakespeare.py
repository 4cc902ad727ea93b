"""GPT on tinyshakespeare (char level): modelforge's LM loop against a plain fp32 PyTorch loop.

    .venv/bin/python bench/gpt_shakespeare.py            # the reference: 2,000 steps
    .venv/bin/python bench/gpt_shakespeare.py --steps 200  # a quick look
    .venv/bin/python bench/gpt_shakespeare.py --set model.rope=false   # learned positions instead of RoPE

Reference configuration (../shared/datasets/README.md), read from examples/shakespeare_char.yaml:
4 layers, 4 heads, 128 wide, context 64, batch 12, lr 1e-3 cosine to 1e-4 after 100 warm-up
steps, AdamW (0.9, 0.99), weight decay 0.1, grad clip 1, no dropout; positions by RoPE (the
example's choice; `--set model.rope=false` for learned position embeddings as in the minimal
reference). Both loops train the same `GPT` module on the same token file.

1. ours: `modelforge.train` with that config and `train.threads: auto`; its val loss at the last
   step (whole validation split) and training tokens/s (periodic evaluations excluded);
2. baseline: a plain loop (torch's default threads, fp32, foreach AdamW, LambdaLR, no compile),
   stopped at the same wall-clock training budget ours used (or at the last step if sooner);
3. the ratios: tokens/s ours / baseline, and val loss of each at the equal budget;
4. KV-cache generation tokens/s against recomputing the full context for every token.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import torch
from torch.nn import functional as F

import modelforge
from modelforge.config import RunConfig, load_config
from modelforge.models.gpt import GPT
from modelforge.text.data import prepare_tokens, random_windows
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


def baseline_loop(model: GPT, tokens, steps: int, budget_seconds: float) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    """A plain fp32 loop on the same schedule; stops at `steps` or when training time passes the budget."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)

    def factor(step: int) -> float:
        if step < 100:
            return (step + 1) / 101
        progress = min(1.0, (step - 100) / max(1, steps - 100))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    generator = torch.Generator().manual_seed(0)
    model.train()
    spent, done = 0.0, 0
    while done < steps and spent < budget_seconds:
        started = time.perf_counter()
        inputs, targets = random_windows(tokens, 12, 64, generator)
        logits = model(inputs)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        spent += time.perf_counter() - started
        done += 1
    return done, spent


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
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; torch threads {default_threads}")

    with tempfile.TemporaryDirectory() as folder:
        config = reference_config(args.data, args.steps, args.overrides)
        print(f"model: {config.model.model_dump(exclude_none=True)}")
        run = modelforge.train(config, Path(folder) / "ours")
        ours = run.metrics
        budget = ours["train_seconds"]
        threads_used = sorted({row["threads"] for row in run.history})
        print(
            f"ours      : {ours['steps']} steps, val loss {ours['val_loss']:.4f}, "
            f"{ours['tokens_per_second']:,.0f} tokens/s, {budget:.1f} s training (threads chosen: {threads_used})"
        )

        torch.set_num_threads(default_threads)
        data = prepare_tokens(str(args.data), Path(folder) / ".token-cache", "char", 0, 0.1)
        torch.manual_seed(0)
        baseline = GPT(run.model.config)
        done, spent = baseline_loop(baseline, data.train, args.steps, budget)
        baseline_loss = sequence_loss(baseline.eval(), data.valid, 64, 12)
        baseline_rate = done * 12 * 64 / spent
        print(
            f"baseline  : {done} steps in {spent:.1f} s (budget {budget:.1f} s), val loss {baseline_loss:.4f}, "
            f"{baseline_rate:,.0f} tokens/s"
        )
        print(f"tokens/s ratio ours/baseline: {ours['tokens_per_second'] / baseline_rate:.2f}x (floor 1.5x)")
        torch.set_num_threads(1)  # where the speed comes from: the same plain loop pinned to one thread
        done_one, spent_one = baseline_loop(GPT(run.model.config), data.train, 50, float("inf"))
        torch.set_num_threads(default_threads)
        pinned_rate = done_one * 12 * 64 / spent_one
        print(f"baseline pinned to 1 thread (50 steps, throughput only): {pinned_rate:,.0f} tokens/s")
        print(
            f"val loss at {args.steps} steps: {ours['val_loss']:.4f} (floor {REFERENCE_VAL_LOSS}) -> "
            f"{'met' if ours['val_loss'] <= REFERENCE_VAL_LOSS else 'NOT met'}"
        )
        print(
            f"equal budget {budget:.0f} s: ours {ours['val_loss']:.4f} vs baseline {baseline_loss:.4f} -> "
            f"{'ours lower' if ours['val_loss'] < baseline_loss else 'ours NOT lower'}"
        )

        torch.set_num_threads(1 if 1 in threads_used else default_threads)
        cached = load_generator(run.path)
        recompute = Generator(cached.model, cached.tokenizer, use_cache=False)
        fast, slow = generation_speed(cached, args.generate_tokens), generation_speed(recompute, args.generate_tokens)
        print(
            f"generation ({args.generate_tokens} tokens, greedy, {torch.get_num_threads()} thread(s)): "
            f"KV cache {fast:,.0f} tokens/s, full recompute {slow:,.0f} tokens/s, {fast / slow:.2f}x"
        )
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
