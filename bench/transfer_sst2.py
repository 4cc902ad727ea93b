"""Transfer learning on SST-2: frozen MiniLM + head vs LoRA vs full fine-tune vs the core
`transformer` trained from scratch, on the same phrases, through the same CLI.

Each variant is one `modelforge train` subprocess over examples/sst2_minilm_*.yaml (one pass over
a random max_steps × batch_size subsample of the 67k training phrases, or with `--steps 0` the
config's own epochs over all of them); the table gives SST-2
validation accuracy (872 GLUE dev sentences), wall and CPU time, the trainable share of
the parameters and the subprocess's peak resident memory (`wait4` ru_maxrss). It also measures
fp32 vs bf16 matmul speed, which decides `train.precision` on this CPU.

    nice .venv/bin/python bench/transfer_sst2.py                 # all four, 320 steps of 32
    nice .venv/bin/python bench/transfer_sst2.py --only frozen --steps 50
    nice .venv/bin/python bench/transfer_sst2.py --only frozen --steps 0  # examples/sst2_minilm_frozen.yaml as is
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the examples read `dataset:NAME/...`: a shared copy beside the repo serves as the cache unless MODELFORGE_DATA is set
if (ROOT.parent / "shared" / "datasets").is_dir():
    os.environ.setdefault("MODELFORGE_DATA", str(ROOT.parent / "shared" / "datasets"))
FROZEN = ROOT / "examples" / "sst2_minilm_frozen.yaml"
LORA = ROOT / "examples" / "sst2_minilm_lora.yaml"
VARIANTS: dict[str, tuple[Path, list[str]]] = {
    "frozen": (FROZEN, []),
    "lora": (LORA, []),
    "full": (LORA, ["model.lora=null", "train.lr=1e-4"]),
    "scratch": (
        LORA,
        [
            "features=[{name: text, type: text, tokenizer: word, max_length: 64}]",
            "model={type: transformer, width: 128, depth: 2, heads: 4, dropout: 0.1}",
            "train.lr=1e-3",
        ],
    ),
}


def matmul_gflops(dtype_name: str, threads: int) -> float:
    import torch

    torch.set_num_threads(threads)
    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(512, 384).to(dtype), torch.randn(384, 1536).to(dtype)
    for _ in range(3):
        a @ b
    started, repeats = time.perf_counter(), 10
    for _ in range(repeats):
        a @ b
    return 2 * 512 * 384 * 1536 * repeats / (time.perf_counter() - started) / 1e9


def run_variant(name: str, out: Path, steps: int, threads: int) -> dict[str, object]:
    config, overrides = VARIANTS[name]
    sets = [*overrides, f"train.threads={threads}"]
    if steps:  # a one-pass subsample of steps × 32 phrases; 0: the config's own epochs over all of them
        sets += [f"train.max_steps={steps}", f"train.warmup_steps={steps // 10}"]
    command = [str(ROOT / ".venv" / "bin" / "modelforge"), "train", str(config), "--out", str(out), "--no-progress"]
    for item in sets:
        command += ["--set", item]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{name}: modelforge train failed:\n{output[-2000:]}")
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    evaluation = json.loads((out / "eval.json").read_text())
    info = json.loads((out / "model.json").read_text())
    adapter = out / "adapter.safetensors"
    return {
        "variant": name,
        "valid_accuracy": history[-1]["valid_accuracy"],
        "eval_accuracy": evaluation["accuracy"],
        "rows": history[-1]["step"] * 32,
        "train_s": history[-1].get("seconds"),
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "parameters": info["parameters"],
        "trainable": info.get("trainable_parameters"),
        "share": info.get("trainable_share"),
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "adapter_mb": adapter.stat().st_size / 1e6 if adapter.exists() else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument(
        "--steps", type=int, default=320, help="optimizer steps of 32 phrases (320 → 10,240); 0: the config's epochs"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared 2-core machine)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-transfer-sst2")
    args = parser.parse_args()

    fp32, bf16 = matmul_gflops("float32", args.threads), matmul_gflops("bfloat16", args.threads)
    print(f"matmul 512×384×1536, {args.threads} thread(s): fp32 {fp32:.1f} GFLOP/s, bf16 {bf16:.2f} GFLOP/s")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows = []
    for name in args.only:
        row = run_variant(name, args.out / f"{name}-{stamp}", args.steps, args.threads)
        rows.append(row)
        print(json.dumps(row), flush=True)

    size = f"{args.steps * 32:,} training phrases (one pass)" if args.steps else "the configs' own epochs"
    print(f"\nSST-2, {size}, {args.threads} thread(s), load {os.getloadavg()}")
    header = "| variant | valid acc | train s | wall s | CPU s | trainable params | share | peak RSS MB |"
    print(header)
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['variant']} | {r['valid_accuracy']:.4f} | {r['train_s']:.0f} | {r['wall_s']:.0f} | "
            f"{r['cpu_s']:.0f} | {r['trainable']:,} | {r['share']:.2%} | {r['peak_rss_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
