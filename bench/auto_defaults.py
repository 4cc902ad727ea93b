"""Issue 20's floor: with defaults only (no train.precision / train.threads keys, so both `auto`), every
example trains within 10 % of its best hand-picked setting on this machine.

For each examples/*.yaml whose data is here (`dataset:NAME/...` from MODELFORGE_DATA, by default the
shared copy beside the repo), this trains the same short, fixed amount of work once with the
example's defaults and once per hand-picked setting: train.precision fp32 and bf16 (only for tasks
that read train.precision) × train.threads 1 and all of torch's threads. Each training is one
`modelforge train` subprocess (thread settings stay in their own process); the settings are run
round-robin (`--rounds`, the order reversed every other round) so the machine's load hits all alike,
and the median of each setting's throughputs counts.

The work: `train.max_steps=STEPS` where the task reads max_steps (epochs unbounded, early stopping
off), else enough epochs for about STEPS steps (generation, recommendation). An untimed default run
first sizes it: when that run trained under --min-seconds (the tabular examples train 50 steps in
milliseconds, which times the machine's hiccups rather than the setting), STEPS is raised to about
that (at most 200×). A run past --run-timeout is stopped and counts as not the best.
Kept out of the runs where they allow it: the MiniLM examples train on STEPS × batch_size phrases
drawn with seed 0 and validate on 128 (tokenizing and encoding all 67k would cost minutes of wall
per run and nothing in throughput); the seq2seq example validates on 8 pairs (valid BLEU decodes 1
greedily) and leaves out the test set and beam search (an untrained model's beams run to the length
limit: minutes); the generators skip the classifier score.

Throughput, from the run's own metrics.jsonl, the probe excluded:
  classification / regression  samples/s of the epoch rows (training loop only, validation excluded)
  language-modeling            tokens/s of the evaluation windows (training steps only)
  generation / recommendation / seq2seq
                               ~samples/s = steps × batch_size / the epoch rows' seconds (their rows
                               record no rate; the epoch's seconds include its validation pass)
Wall: seconds of the whole `modelforge train` call (data preparation, probe, evaluation included).
Each default run gets a fresh MODELFORGE_CACHE, so `auto` probes as on a first run (`--cached-probe`
keeps the user's cache instead).

    .venv/bin/python bench/auto_defaults.py                                  # every example, 50 steps, 2 rounds
    .venv/bin/python bench/auto_defaults.py --examples quickstart breast_cancer --steps 30 --rounds 1
    .venv/bin/python bench/auto_defaults.py --examples shakespeare_char --steps 200 --json auto.json
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _machine import auto_line, print_header

ROOT = Path(__file__).resolve().parents[1]
# the examples read `dataset:NAME/...`: a shared copy beside the repo serves as the cache unless MODELFORGE_DATA is set
os.environ.setdefault("MODELFORGE_DATA", str(ROOT.parent / "shared" / "datasets"))
EXAMPLES = {path.stem: path for path in sorted((ROOT / "examples").glob("*.yaml"))}
FLOOR = 0.9  # default / best hand-picked throughput the issue asks for
HF_VALID_ROWS = 128  # validation phrases of the MiniLM examples (encoding all 872 costs wall, not throughput)
SEQ2SEQ_VALID_PAIRS = 8  # also the rows beam-searched after training (with no test set)
SEQ2SEQ_EVAL_ROWS = 1  # greedy-decoded for valid BLEU each epoch, inside the epoch's seconds
MAX_SCALE = 200  # --min-seconds raises a tiny example's steps at most this many times
MANY_EPOCHS = 10_000  # with train.max_steps: enough epochs for any --steps


@dataclass
class Setting:
    label: str
    sets: list[str]  # the --set items beside the example's own (none for the default)
    default: bool = False


@dataclass
class Plan:
    """How one example is run: the shared --set items, the throughput unit and what was changed."""

    name: str
    config: Path
    task: str
    sets: list[str]
    settings: list[Setting]
    unit: str
    reads_precision: bool
    notes: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    rate: float | None
    wall: float
    train_s: float = 0.0
    auto: str = ""
    chose: str = ""  # the hand-picked setting's label that auto's choice equals
    threads_seen: Any = None
    failed: str = ""


# ----------------------------------------------------------------------------- planning
def write_csv(path: Path, fieldnames: list[str], rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    return path


def sample_csv(source: Path, rows: int, out: Path, seed: int = 0) -> tuple[Path, int]:
    """`rows` rows of `source` drawn with `seed` (file order kept), or all of them when it has fewer."""
    with source.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        table, fieldnames = list(reader), list(reader.fieldnames or [])
    keep = sorted(random.Random(seed).sample(range(len(table)), rows)) if rows < len(table) else range(len(table))
    chosen = [table[i] for i in keep]
    return write_csv(out, fieldnames, chosen), len(chosen)


def head_lines(source: Path, lines: int, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    with source.open(encoding="utf-8") as handle:
        out.write_text("".join(line for _, line in zip(range(lines), handle, strict=False)), encoding="utf-8")
    return out


def estimated_train_rows(run_config: Any) -> int | None:
    """Rows an epoch trains on, roughly, for the tasks without train.max_steps (to size their epochs)."""
    data = run_config.data
    try:
        if run_config.task == "generation":
            import numpy as np

            with np.load(str(data.train)) as arrays:
                total = len(arrays[data.target] if data.target in arrays else arrays[arrays.files[0]])
            split = data.split
            held = (getattr(split, "valid", 0.0) or 0.0) + (getattr(split, "test", 0.0) or 0.0)
            return int(total * (1.0 - held))
        if run_config.task == "recommendation":
            ratings = Path(str(data.train)) / "u.data"
            with ratings.open(encoding="latin-1") as handle:
                total = sum(1 for _ in handle)
            test = getattr(run_config.recommend, "test_fraction", 0.2) or 0.0
            return int(total * (1.0 - test))
    except (OSError, ValueError, KeyError, AttributeError):
        return None
    return None


def setting_label(precision: str | None, threads: int | None) -> str:
    return f"{precision + ' / ' if precision else ''}{threads} thread{'' if threads == 1 else 's'}"


def auto_choice(run_dir: Path, reads_precision: bool) -> str:
    """auto's choice as a hand-picked setting's label ("" when environment.json records none)."""
    try:
        auto = json.loads((run_dir / "environment.json").read_text()).get("auto") or {}
    except (OSError, ValueError, AttributeError):
        return ""
    if not auto.get("threads"):
        return ""
    return setting_label(auto.get("precision") if reads_precision else None, auto["threads"])


def plan_example(name: str, steps: int, work: Path, all_threads: int) -> Plan | str:
    """The example's plan, or why it is skipped."""
    import yaml

    from modelforge.config import load_config
    from modelforge.errors import ModelforgeError
    from modelforge.tasks import task_named

    path = EXAMPLES[name]
    raw = yaml.safe_load(path.read_text()) or {}
    try:
        run_config = load_config(path, [])  # resolves every data path: a missing dataset is an error here
    except ModelforgeError as exc:
        return f"data or config unavailable: {str(exc).splitlines()[0]}"
    task = run_config.task
    keys = task_named(task).train_keys
    train = raw.get("train") or {}
    model = raw.get("model") or {}
    batch = int(run_config.train.batch_size)
    sets: list[str] = []
    notes: list[str] = []
    if "max_steps" in keys:
        sets.append(f"train.max_steps={steps}")
        notes.append(f"train.max_steps={steps}")
        if "epochs" in keys and task != "language-modeling":  # max_steps ends the run, not the epochs
            sets.append(f"train.epochs={MANY_EPOCHS}")
        if train.get("early_stopping"):
            sets.append("train.early_stopping=null")
            notes.append("early stopping off")
    else:
        rows = estimated_train_rows(run_config)
        epochs = max(1, round(steps / math.ceil(rows / batch))) if rows else 1
        sets.append(f"train.epochs={epochs}")
        notes.append(f"train.epochs={epochs}" + (f" (~{math.ceil(rows / batch)} steps each)" if rows else ""))

    folder = work / "data" / name
    if model.get("type") == "hf_encoder":  # MiniLM: a drawn subsample instead of all 67k phrases
        drawn, count = sample_csv(Path(str(run_config.data.train)), steps * batch, folder / "train.csv")
        sets.append(f"data.train={drawn}")
        notes.append(f"{count:,} training phrases drawn (seed 0)")
        if run_config.data.valid:
            valid, count = sample_csv(Path(str(run_config.data.valid)), HF_VALID_ROWS, folder / "valid.csv")
            sets.append(f"data.valid={valid}")
            notes.append(f"{count} validation phrases")
    if task == "seq2seq":
        sets += [f"seq2seq.eval_rows={SEQ2SEQ_EVAL_ROWS}", "seq2seq.beam=1"]
        if run_config.data.valid is not None:
            source = head_lines(Path(run_config.data.valid.source), SEQ2SEQ_VALID_PAIRS, folder / "valid.src")
            target = head_lines(Path(run_config.data.valid.target), SEQ2SEQ_VALID_PAIRS, folder / "valid.tgt")
            sets.append(f"data.valid={{source: {source}, target: {target}}}")
        if run_config.data.test is not None:
            sets.append("data.test=null")
        notes.append(f"{SEQ2SEQ_VALID_PAIRS} validation pairs, valid BLEU on {SEQ2SEQ_EVAL_ROWS}, greedy, no test set")
    if task == "generation" and run_config.generation is not None and run_config.generation.classifier:
        sets.append("generation.classifier=null")
        notes.append("no classifier score")

    precisions = ["fp32", "bf16"] if "precision" in keys else [None]
    thread_counts = sorted({1, all_threads})
    settings = [Setting("default (auto)", [], default=True)]
    for precision in precisions:
        for threads in thread_counts:
            label = setting_label(precision, threads)
            chosen = [f"train.threads={threads}"] + ([f"train.precision={precision}"] if precision else [])
            settings.append(Setting(label, chosen))
    if task in ("classification", "regression", "multilabel"):
        unit = "samples/s"
    elif task == "language-modeling":
        unit = "tokens/s"
    else:
        unit = "~samples/s"
    if "precision" not in keys:
        notes.append(f"{task} does not read train.precision: threads only")
    return Plan(name, path, task, sets, settings, unit, "precision" in keys, notes)


# ----------------------------------------------------------------------------- running and reading
def throughput(run_dir: Path, batch_size: int) -> tuple[float | None, float]:
    """Training throughput from metrics.jsonl (see the module docstring for each task's measure), and
    the training seconds it is measured over."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    rows = [row for row in rows if isinstance(row, dict)]
    if not rows:
        return None, 0.0
    if any("samples_per_second" in row for row in rows):  # supervised: the epoch loop alone
        timed = [row for row in rows if "samples_per_second" in row and row.get("seconds")]
        seconds = sum(float(row["seconds"]) for row in timed)
        samples = sum(float(row["samples_per_second"]) * float(row["seconds"]) for row in timed)
        return (samples / seconds if seconds else None), seconds
    if any("tokens_per_second" in row for row in rows):  # language model: cumulative train seconds per window
        tokens, previous = 0.0, 0.0
        for row in rows:
            if "tokens_per_second" in row:
                tokens += float(row["tokens_per_second"]) * (float(row["seconds"]) - previous)
                previous = float(row["seconds"])
        return (tokens / previous if previous else None), previous
    seconds = sum(float(row.get("seconds", 0.0)) for row in rows)
    steps = max(int(row.get("step", 0)) for row in rows)
    return (steps * batch_size / seconds if seconds else None), seconds


def run_setting(
    plan: Plan, setting: Setting, out: Path, batch_size: int, cached_probe: bool, timeout: float = 0.0
) -> Outcome:
    executable = ROOT / ".venv" / "bin" / "modelforge"
    command = [str(executable if executable.exists() else shutil.which("modelforge") or "modelforge")]
    command += ["train", str(plan.config), "--out", str(out), "--no-progress"]
    for item in [*plan.sets, *setting.sets]:
        command += ["--set", item]
    environment = dict(os.environ)
    if setting.default and not cached_probe:  # auto probes as on a first run of this model here
        environment["MODELFORGE_CACHE"] = str(out.parent / f"{out.name}-probe-cache")
    started = time.perf_counter()
    try:
        process = subprocess.run(
            command, capture_output=True, text=True, env=environment, check=False, timeout=timeout or None
        )
    except subprocess.TimeoutExpired:  # run() kills the child; a setting this slow is not the best one
        return Outcome(None, time.perf_counter() - started, failed=f"stopped after --run-timeout {timeout:.0f} s")
    wall = time.perf_counter() - started
    if process.returncode != 0:
        lines = (process.stdout + process.stderr).strip().splitlines()
        return Outcome(None, wall, failed=(lines[-1] if lines else f"exit {process.returncode}")[:300])
    try:
        rate, seconds = throughput(out, batch_size)
    except (OSError, ValueError, KeyError) as exc:
        return Outcome(None, wall, failed=f"unreadable metrics.jsonl: {exc}")
    if not setting.default:
        return Outcome(rate, wall, train_s=seconds)
    return Outcome(rate, wall, train_s=seconds, auto=auto_line(out), chose=auto_choice(out, plan.reads_precision))


def yes_no(ratio: float) -> str:
    return "yes" if ratio >= FLOOR else "no"


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.2f}"


def measure(plan: Plan, rounds: int, work: Path, cached_probe: bool, timeout: float) -> dict[str, Any]:
    from modelforge.config import load_config

    batch = int(load_config(plan.config, plan.sets).train.batch_size)
    results: dict[str, list[Outcome]] = {setting.label: [] for setting in plan.settings}
    for round_index in range(rounds):
        order = plan.settings if round_index % 2 == 0 else plan.settings[::-1]
        for number, setting in enumerate(order):
            out = work / "runs" / plan.name / f"r{round_index}-{number}"
            outcome = run_setting(plan, setting, out, batch, cached_probe, timeout)
            results[setting.label].append(outcome)
            if outcome.failed and setting.default and round_index == 0:
                return {"skipped": f"the default run failed: {outcome.failed}"}
            shutil.rmtree(out, ignore_errors=True)  # runs keep checkpoints; only the numbers are wanted
    rows = []
    for setting in plan.settings:
        outcomes = results[setting.label]
        rates = [o.rate for o in outcomes if o.rate is not None]
        rows.append(
            {
                "setting": setting.label,
                "default": setting.default,
                "rate": statistics.median(rates) if rates else None,
                "rates": rates,
                "wall": statistics.median(o.wall for o in outcomes),
                "auto": sorted({o.auto for o in outcomes if o.auto}),
                "chose": [o.chose for o in outcomes if setting.default],
                "failed": [o.failed for o in outcomes if o.failed],
            }
        )
    default = rows[0]
    picked = [row for row in rows[1:] if row["rate"] is not None]
    best = max(picked, key=lambda row: row["rate"]) if picked else None
    ratio = default["rate"] / best["rate"] if best and default["rate"] else None
    # when every round's auto chose one setting: default / that setting measured by hand, which
    # shows what the probe's pick costs beside the pick itself (and the noise between equal settings)
    chosen = set(default["chose"])
    same = next((row for row in picked if chosen == {row["setting"]}), None)
    same_ratio = default["rate"] / same["rate"] if same and default["rate"] else None
    return {
        "rows": rows,
        "best": best["setting"] if best else None,
        "ratio": ratio,
        "chosen": same["setting"] if same else None,
        "ratio_to_chosen": same_ratio,
    }


def sized(plan: Plan, args: argparse.Namespace, work: Path, all_threads: int) -> tuple[Plan, str]:
    """One untimed default run (a warm-up that also catches a failing example); when it trained under
    --min-seconds, the plan again with the steps raised to about that (at most MAX_SCALE ×): a run of
    tens of milliseconds measures the machine's hiccups, not the setting. Returns (plan, why skipped)."""
    from modelforge.config import load_config

    batch = int(load_config(plan.config, plan.sets).train.batch_size)
    out = work / "runs" / plan.name / "sizing"
    trial = run_setting(plan, plan.settings[0], out, batch, args.cached_probe)
    shutil.rmtree(out, ignore_errors=True)
    if trial.failed:
        return plan, f"the default run failed: {trial.failed}"
    if trial.train_s >= args.min_seconds:
        return plan, ""
    scale = min(MAX_SCALE, math.ceil(args.min_seconds / max(trial.train_s, 1e-3)))
    if scale <= 1:
        return plan, ""
    bigger = plan_example(plan.name, args.steps * scale, work, all_threads)
    if isinstance(bigger, str):
        return plan, bigger
    bigger.notes.insert(0, f"steps ×{scale}: {args.steps} trained {trial.train_s:.2f} s, under --min-seconds")
    return bigger, ""


def report(plan: Plan, result: dict[str, Any]) -> None:
    rows = result["rows"]
    width = max(len(row["setting"]) for row in rows)
    print(f"\n== {plan.name} ({plan.task}; {'; '.join(plan.notes)})", flush=True)
    print(f"   {'setting':<{width}}  {plan.unit + ' (median)':>20}  {'runs':<24}  {'wall s':>7}")
    for row in rows:
        runs = " ".join(fmt(rate) for rate in row["rates"])
        mark = "  <- best hand-picked" if row["setting"] == result["best"] else ""
        failed = f"  FAILED: {row['failed'][0]}" if row["failed"] else ""
        print(f"   {row['setting']:<{width}}  {fmt(row['rate']):>20}  {runs:<24}  {row['wall']:>7.1f}{mark}{failed}")
    for line in rows[0]["auto"]:
        print(f"   default: {line}")
    if result["ratio_to_chosen"] is not None:
        print(f"   default / the same setting by hand ({result['chosen']}) = {result['ratio_to_chosen']:.3f}")
    elif rows[0]["chose"]:
        print(f"   auto's choices differed between rounds: {', '.join(c or '?' for c in rows[0]['chose'])}")
    ratio = result["ratio"]
    if ratio is None:
        print("   default / best: not measured")
    else:
        print(f"   default / best ({result['best']}) = {ratio:.3f}; within 10%: {yes_no(ratio)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--examples", nargs="+", choices=list(EXAMPLES), default=list(EXAMPLES), metavar="NAME", help="examples/NAME"
    )
    parser.add_argument("--steps", type=int, default=50, help="training steps per run (the work's size)")
    parser.add_argument("--rounds", type=int, default=2, help="round-robin rounds over the settings; the median counts")
    parser.add_argument(
        "--min-seconds",
        type=float,
        default=2.0,
        help="raise an example's steps until a run trains about this long (0: --steps as given)",
    )
    parser.add_argument(
        "--run-timeout",
        type=float,
        default=600.0,
        help="stop a run after this many seconds and count it as not the best (0: no limit)",
    )
    parser.add_argument("--cached-probe", action="store_true", help="default runs use the user's auto cache")
    parser.add_argument("--out", type=Path, help="work folder (default: a temporary one, removed at the end)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.steps < 1 or args.rounds < 1:
        parser.error("--steps and --rounds must be at least 1")

    print_header()
    import torch

    all_threads = torch.get_num_threads()
    print(f"hand-picked: fp32 and bf16 (tasks that read train.precision) × threads 1 and {all_threads}; ", end="")
    print(f"{args.steps} steps a run, {args.rounds} round{'s' if args.rounds != 1 else ''}", flush=True)
    work = args.out or Path(tempfile.mkdtemp(prefix="auto-defaults-"))
    summary: list[tuple[str, str]] = []
    results: dict[str, Any] = {}
    started = time.perf_counter()
    try:
        for name in args.examples:
            plan = plan_example(name, args.steps, work, all_threads)
            if isinstance(plan, str):
                print(f"\n== {name}: skipped: {plan}", flush=True)
                summary.append((name, f"skipped ({plan})"))
                results[name] = {"skipped": plan}
                continue
            plan, why = sized(plan, args, work, all_threads)
            if why:
                print(f"\n== {name}: skipped: {why}", flush=True)
                summary.append((name, f"skipped ({why})"))
                results[name] = {"skipped": why}
                continue
            result = measure(plan, args.rounds, work, args.cached_probe, args.run_timeout)
            results[name] = {"task": plan.task, "unit": plan.unit, "notes": plan.notes, **result}
            if "skipped" in result:
                print(f"\n== {name}: skipped: {result['skipped']}", flush=True)
                summary.append((name, f"skipped ({result['skipped']})"))
                continue
            report(plan, result)
            ratio = result["ratio"]
            verdict = "not measured" if ratio is None else f"{ratio:.3f} (within 10%: {yes_no(ratio)})"
            summary.append((name, verdict))
    finally:
        if args.out is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nsummary: default / best hand-picked throughput ({time.perf_counter() - started:.0f} s)")
    width = max(len(name) for name, _ in summary) if summary else 0
    for name, verdict in summary:
        print(f"   {name:<{width}}  {verdict}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    measured = [results[name]["ratio"] for name, _ in summary if results[name].get("ratio") is not None]
    if measured and min(measured) < FLOOR:
        sys.exit(1)


if __name__ == "__main__":
    main()
