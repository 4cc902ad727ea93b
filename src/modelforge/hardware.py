"""The machine a run trains on: its CPU, the flags that decide bf16 speed, threads, and measured matmul speed.

environment.json, `train.precision: auto`'s probe cache and every bench's header read it from here, so
a figure always travels with the machine that produced it.
"""

from __future__ import annotations

import functools
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

# The CPU flags that change how fast training runs: vector width and native bf16 (AVX512-BF16, AMX).
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8")


@functools.cache
def cpu_info() -> tuple[str, tuple[str, ...]]:
    """(CPU model name, the SPEED_FLAGS it has), read from /proc/cpuinfo where there is one."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), ()
    name, flags = platform.machine(), set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and name == platform.machine():
            name = value.strip()
        elif key.strip() in ("flags", "Features") and not flags:
            flags = set(value.split())
    return name, tuple(flag for flag in SPEED_FLAGS if flag in flags)


def machine() -> dict[str, Any]:
    """What identifies this machine's speed: CPU model, speed flags, cores, torch threads and version, GPU."""
    name, flags = cpu_info()
    record: dict[str, Any] = {
        "cpu": name,
        "cpu_flags": list(flags),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        record["gpu"] = torch.cuda.get_device_name(0)
    return record


def matmul_gflops(dtype: torch.dtype, size: int = 2048, seconds: float = 0.5, device: str = "cpu") -> float:
    """GFLOP/s of a size×size matmul in `dtype` on `device`, timed for about `seconds` after a warm-up."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    for _ in range(3):  # warm-up: kernels chosen (oneDNN's first bf16 calls are slow), caches filled
        a @ b
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        if device != "cpu":
            torch.cuda.synchronize()
        done += 1
    return 2 * size**3 * done / (time.perf_counter() - started) / 1e9


def machine_header() -> str:
    """The lines every bench prints above its table: CPU, flags, threads, fp32/bf16 matmul speed, GPU."""
    info = machine()
    flags = ", ".join(info["cpu_flags"]) or "none of " + ", ".join(SPEED_FLAGS)
    fp32 = matmul_gflops(torch.float32)
    # emulated bf16 (no avx512_bf16 / amx_bf16) runs a 2048² matmul in seconds: a smaller one tells as much
    bf16 = matmul_gflops(torch.bfloat16, 2048 if {"avx512_bf16", "amx_bf16"} & set(info["cpu_flags"]) else 512)
    threads = f"{info['torch_threads']} thread{'s' if info['torch_threads'] != 1 else ''}"
    lines = [
        f"machine: {info['cpu']} ({info['cpus']} CPUs, torch {info['torch']}, {threads})",
        f"cpu flags: {flags}",
        f"matmul GFLOP/s: fp32 {fp32:,.0f}, bf16 {bf16:,.0f} ({bf16 / fp32:.2f}x)",
        f"load average: {os.getloadavg()[0]:.2f}",
    ]
    if "gpu" in info:
        lines.insert(1, f"gpu: {info['gpu']}")
    return "\n".join(lines)
