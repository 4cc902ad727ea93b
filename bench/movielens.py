"""MovieLens 100k benchmark for task: recommendation (the `movielens-100k` dataset: `modelforge datasets fetch
movielens-100k --accept-terms`, or ../shared/datasets beside the repo).

Trains the example configs and prints each against its baseline:
  explicit MF and two-tower — test RMSE on a seeded random 80/20 split vs the global-mean rating;
  implicit MF — leave-last-out NDCG@10 / recall@10 vs the popularity list (ratio printed).

    .venv/bin/python bench/movielens.py                 # all three
    .venv/bin/python bench/movielens.py --only implicit --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _machine import auto_line, print_header

import modelforge
from modelforge.config import load_config

ROOT = Path(__file__).resolve().parents[1]
# the examples read `dataset:NAME/...`: a shared copy beside the repo serves as the cache unless MODELFORGE_DATA is set
if (ROOT.parent / "shared" / "datasets").is_dir():
    os.environ.setdefault("MODELFORGE_DATA", str(ROOT.parent / "shared" / "datasets"))
EXAMPLES = {
    "mf": ROOT / "examples" / "movielens.yaml",
    "two_tower": ROOT / "examples" / "movielens_two_tower.yaml",
    "implicit": ROOT / "examples" / "movielens_implicit.yaml",
}


def run_one(name: str, seed: int, work: Path) -> str:
    started = time.time()
    config = load_config(EXAMPLES[name], [f"seed={seed}"])
    metrics = modelforge.train(config, work / f"{name}-{seed}").metrics
    seconds = time.time() - started
    auto = f"\n{name} seed {seed}: {auto_line(work / f'{name}-{seed}')}"
    if name == "implicit":
        return (
            f"implicit mf   seed {seed}: ndcg@10 {metrics['ndcg@10']:.4f}"
            f" (popularity {metrics['popularity_ndcg@10']:.4f},"
            f" ratio {metrics['ndcg_ratio_to_popularity']:.2f}x)  recall@10 {metrics['recall@10']:.4f}"
            f" (popularity {metrics['popularity_recall@10']:.4f})  users {metrics['n']}  {seconds:.0f} s{auto}"
        )
    baseline = metrics["baseline_global_mean_rmse"]
    return (
        f"explicit {name:<9} seed {seed}: rmse {metrics['rmse']:.4f} (global mean {baseline:.4f},"
        f" ratio {metrics['rmse'] / baseline:.3f})  test rows {metrics['n']}  {seconds:.0f} s{auto}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(EXAMPLES), action="append", help="run these configs only")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="split and initialization seeds")
    args = parser.parse_args()
    print_header()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or list(EXAMPLES):
            for seed in args.seeds:
                print(run_one(name, seed, Path(tmp)), flush=True)


if __name__ == "__main__":
    main()
