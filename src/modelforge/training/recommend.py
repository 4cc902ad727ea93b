"""The recommendation recipe: interactions → id index + feature tables → split → model → loop → run.

Readable top to bottom like the supervised recipe, but with its own loop: explicit feedback
regresses ratings (MSE, RMSE reported); implicit feedback learns to score a user's items above
random unseen ones (binary cross-entropy with `recommend.negatives` samples per positive) and
is measured by recall@K and NDCG@K with one held-out item per user (leave-last-out), next to
the popularity baseline. The run directory has the core's files; `interactions.safetensors`
adds what predict needs to skip seen items and to describe users and items by features.
Training is trusted as the supervised task's is: optimizer and schedule from the registries,
checkpoints (train.checkpoint_every and at epoch ends), TensorBoard, SIGTERM/SIGINT saving and
stopping, and `--resume` ending bitwise equal to the run that was never stopped.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from modelforge.config import RecommendConfig, RunConfig
from modelforge.data.readers import read_data, train_files
from modelforge.errors import DataError
from modelforge.files import append_jsonl, atomic_write_bytes, atomic_write_json
from modelforge.inference import set_cpu_threads
from modelforge.models import build_model
from modelforge.models.recommend import InteractionSpec
from modelforge.run import (
    RunDirectory,
    finish_run_directory,
    read_finished_run,
    start_run_files,
)
from modelforge.training.checkpoint import (
    Checkpoint,
    TrainingParts,
    TrainingState,
    open_checkpointer,
    storable_tensors,
)
from modelforge.training.distributed import Topology
from modelforge.training.interrupt import StopSignal
from modelforge.training.loop import LoopHook, StepInfo, TrainingError, end_training, keep_if_best
from modelforge.training.optim import OPTIMIZERS, build_schedule
from modelforge.training.probe import settle_auto
from modelforge.training.resume import open_run_directory
from modelforge.training.threads import ThreadChooser

Batch = dict[str, torch.Tensor]
MOVIELENS_GENRES = 19


# ----------------------------------------------------------------------------- reading
def read_movielens_100k(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """u.data ratings, u.user (age, gender, occupation, zip region), u.item (year, 19 genre flags)."""
    for name in ("u.data", "u.user", "u.item"):
        if not (folder / name).is_file():
            raise DataError(f"{folder}: not a MovieLens 100k folder (missing {name})")
    ratings = pd.read_csv(folder / "u.data", sep="\t", names=["user", "item", "rating", "timestamp"])
    users = pd.read_csv(folder / "u.user", sep="|", names=["user", "age", "gender", "occupation", "zip"])
    users["zip"] = users["zip"].astype(str).str[0]  # first digit: a coarse region
    genres = [f"genre_{g}" for g in range(MOVIELENS_GENRES)]
    items = pd.read_csv(
        folder / "u.item", sep="|", encoding="latin-1", names=["item", "title", "date", "video", "url", *genres]
    )
    items["year"] = pd.to_datetime(items["date"], format="%d-%b-%Y", errors="coerce").dt.year
    return ratings, users[["user", "age", "gender", "occupation", "zip"]], items[["item", "year", *genres]]


def load_interactions(config: RunConfig) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """Interactions with columns user, item, rating, time, plus optional user and item feature tables."""
    rec = config.recommend or RecommendConfig()
    source = train_files(config.data)[0]
    if rec.format == "movielens-100k":
        frame, users, items = read_movielens_100k(Path(source))
        frame = frame.rename(columns={"timestamp": "time"})
    else:
        raw = read_data(source, config.data.bad_rows)
        columns = {rec.user: "user", rec.item: "item"}
        if rec.rating:
            columns[rec.rating] = "rating"
        if rec.time:
            columns[rec.time] = "time"
        missing = [c for c in columns if c not in raw.columns]
        if missing:
            raise DataError(f"recommend: column {missing[0]!r} not in {source}; columns: {', '.join(raw.columns)}")
        frame = raw[list(columns)].rename(columns=columns)
        users = _feature_table(rec.user_features, rec.user, "user", config.data.bad_rows)
        items = _feature_table(rec.item_features, rec.item, "item", config.data.bad_rows)
    if rec.feedback == "explicit" and "rating" not in frame.columns:
        raise DataError("recommend.rating: explicit feedback needs a rating column (or set feedback: implicit)")
    if "rating" not in frame.columns:
        frame["rating"] = 1.0
    if "time" not in frame.columns:
        frame["time"] = np.arange(len(frame))  # file order stands for time
    frame = frame.dropna(subset=["user", "item", "rating"])
    if rec.feedback == "implicit" and rec.min_rating is not None:
        frame = frame[frame["rating"] >= rec.min_rating]
    if frame.empty:
        raise DataError(f"{source}: no interactions")
    frame = frame.assign(user=frame["user"].astype(str), item=frame["item"].astype(str))
    return frame.reset_index(drop=True), users, items


def _feature_table(path: str | None, key: str, name: str, bad_rows: str) -> pd.DataFrame | None:
    if path is None:
        return None
    table = read_data(path, bad_rows)
    if key not in table.columns:
        raise DataError(f"recommend.{name}_features: key column {key!r} not in {path}")
    return table.rename(columns={key: name})


# ----------------------------------------------------------------------------- ids and features
@dataclass
class FeatureTable:
    """Per-id dense features: standardized numbers and one-hot categories, learned on known ids."""

    columns: list[str]
    numeric: dict[str, list[float]]  # column → [mean, std]
    categories: dict[str, list[str]]  # column → values

    @property
    def width(self) -> int:
        return len(self.numeric) + sum(len(v) for v in self.categories.values())

    @classmethod
    def fit(cls, table: pd.DataFrame, key: str) -> FeatureTable:
        numeric, categories = {}, {}
        for column in table.columns:
            if column == key:
                continue
            values = table[column]
            if pd.api.types.is_numeric_dtype(values):
                numeric[column] = [float(values.mean()), float(values.std() or 1.0)]
            else:
                categories[column] = sorted(values.dropna().astype(str).unique().tolist())
        return cls([c for c in table.columns if c != key], numeric, categories)

    def matrix(self, table: pd.DataFrame, key: str, ids: list[str]) -> np.ndarray:
        """Row r describes ids[r-1]; row 0 (unknown id) and ids missing from the table stay zero."""
        rows = table.assign(**{key: table[key].astype(str)}).drop_duplicates(key).set_index(key)
        out = np.zeros((len(ids) + 1, self.width), dtype=np.float32)
        present = [i for i, value in enumerate(ids) if value in rows.index]
        known = rows.loc[[ids[i] for i in present]]
        col = 0
        for column, (mean, std) in self.numeric.items():
            values = pd.to_numeric(known[column], errors="coerce").fillna(mean).to_numpy()
            out[np.array(present, dtype=np.int64) + 1, col] = (values - mean) / std
            col += 1
        for column, values in self.categories.items():
            index = {v: j for j, v in enumerate(values)}
            for r, value in zip(present, known[column].astype(str), strict=True):
                if value in index:
                    out[r + 1, col + index[value]] = 1.0
            col += len(values)
        return out


@dataclass
class Vocabulary:
    users: list[str]
    items: list[str]

    def user_ids(self, values: pd.Series) -> np.ndarray:
        index = {u: i + 1 for i, u in enumerate(self.users)}
        return np.array([index.get(str(v), 0) for v in values], dtype=np.int64)

    def item_ids(self, values: pd.Series) -> np.ndarray:
        index = {u: i + 1 for i, u in enumerate(self.items)}
        return np.array([index.get(str(v), 0) for v in values], dtype=np.int64)


# ----------------------------------------------------------------------------- split
def split_interactions(frame: pd.DataFrame, rec: RecommendConfig, seed: int) -> tuple[pd.DataFrame, ...]:
    """train, valid, test: a seeded random split, or each user's last (test) and second-last (valid) item."""
    mode = rec.split or ("random" if rec.feedback == "explicit" else "leave_last_out")
    if mode == "random":
        order = np.random.default_rng(seed).permutation(len(frame))
        n_test = round(rec.test_fraction * len(frame))
        n_valid = round(0.05 * (len(frame) - n_test))
        test, valid, train = order[:n_test], order[n_test : n_test + n_valid], order[n_test + n_valid :]
        return tuple(frame.iloc[part].reset_index(drop=True) for part in (train, valid, test))
    ordered = frame.assign(_row=np.arange(len(frame))).sort_values(["user", "time", "_row"], kind="mergesort")
    position = ordered.groupby("user").cumcount(ascending=False)  # 0 = the user's last interaction
    count = ordered.groupby("user")["item"].transform("size")
    test = ordered[(position == 0) & (count >= 3)]
    valid = ordered[(position == 1) & (count >= 3)]
    train = ordered[(position >= 2) | (count < 3)]
    return tuple(part.drop(columns="_row").reset_index(drop=True) for part in (train, valid, test))


# ----------------------------------------------------------------------------- metrics
def rmse(predicted: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((predicted - truth) ** 2)))


def ranking_metrics(scores: np.ndarray, targets: np.ndarray, k: int) -> dict[str, float]:
    """recall@K and NDCG@K for one relevant item per row (scores of seen items already -inf)."""
    target_scores = scores[np.arange(len(targets)), targets]
    rank = (scores > target_scores[:, None]).sum(axis=1)  # 0 = ranked first
    hit = rank < k
    return {
        f"recall@{k}": float(hit.mean()),
        f"ndcg@{k}": float(np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0).mean()),
    }


def mask_seen(scores: np.ndarray, users: np.ndarray, seen: dict[int, np.ndarray]) -> np.ndarray:
    scores[:, 0] = -np.inf  # the unknown item is never recommended
    for row, user in enumerate(users):
        items = seen.get(int(user))
        if items is not None:
            scores[row, items] = -np.inf
    return scores


def seen_items(users: np.ndarray, items: np.ndarray) -> dict[int, np.ndarray]:
    order = np.argsort(users, kind="stable")
    users, items = users[order], items[order]
    bounds = np.flatnonzero(np.diff(users)) + 1
    return {int(u[0]): i for u, i in zip(np.split(users, bounds), np.split(items, bounds), strict=True) if len(u)}


# ----------------------------------------------------------------------------- model helpers
@torch.no_grad()
def score_all_items(model: torch.nn.Module, users: np.ndarray, tables: Batch) -> np.ndarray:
    """users × all items score matrix (item 0 included) from the two encoders."""
    exported = getattr(model, "score_all_items", None)
    if exported is not None:  # an exported graph standing in for the module (modelforge.export.graphs)
        return exported(users)  # type: ignore[no-any-return]
    model.eval()
    n_items = len(tables["item_features"]) if "item_features" in tables else model_item_count(model)
    item_batch: Batch = {"item": torch.arange(n_items)}
    if "item_features" in tables:
        item_batch["item_features"] = tables["item_features"]
    item_vectors = model.encode_items(item_batch)  # type: ignore[operator]
    out = []
    for begin in range(0, len(users), 1024):
        ids = torch.from_numpy(users[begin : begin + 1024])
        user_batch: Batch = {"user": ids}
        if "user_features" in tables:
            user_batch["user_features"] = tables["user_features"][ids]
        out.append((model.encode_users(user_batch) @ item_vectors.T + model.global_bias).numpy())  # type: ignore[operator]
    return np.concatenate(out) if out else np.zeros((0, n_items), dtype=np.float32)


def model_item_count(model: torch.nn.Module) -> int:
    table = model.items if hasattr(model, "items") else model.item_tower.ids  # type: ignore[union-attr]
    return int(table.num_embeddings)  # type: ignore[union-attr]


def with_features(batch: Batch, tables: Batch) -> Batch:
    if "user_features" in tables:
        batch["user_features"] = tables["user_features"][batch["user"]]
    if "item_features" in tables:
        batch["item_features"] = tables["item_features"][batch["item"]]
    return batch


# ----------------------------------------------------------------------------- the loop
@dataclass
class Prepared:
    vocabulary: Vocabulary
    spec: InteractionSpec
    tables: Batch
    splits: dict[str, dict[str, np.ndarray]]
    popularity: np.ndarray  # item indices, most interacted first (train split)
    feature_tables: dict[str, Any]


def prepare(config: RunConfig) -> Prepared:
    rec = config.recommend or RecommendConfig()
    frame, users, items = load_interactions(config)
    train, valid, test = split_interactions(frame, rec, config.seed)
    vocabulary = Vocabulary(sorted(train["user"].unique()), sorted(train["item"].unique()))
    tables: Batch = {}
    feature_tables: dict[str, Any] = {}
    uses_features = config.model.type != "mf"
    if uses_features and users is not None:
        table = FeatureTable.fit(users.drop_duplicates("user"), "user")
        tables["user_features"] = torch.from_numpy(table.matrix(users, "user", vocabulary.users))
        feature_tables["user"] = asdict(table)
    if uses_features and items is not None:
        table = FeatureTable.fit(items.drop_duplicates("item"), "item")
        tables["item_features"] = torch.from_numpy(table.matrix(items, "item", vocabulary.items))
        feature_tables["item"] = asdict(table)
    splits = {
        name: {
            "user": vocabulary.user_ids(part["user"]),
            "item": vocabulary.item_ids(part["item"]),
            "rating": part["rating"].to_numpy(dtype=np.float32),
        }
        for name, part in (("train", train), ("valid", valid), ("test", test))
    }
    counts = np.bincount(splits["train"]["item"], minlength=len(vocabulary.items) + 1)
    counts[0] = -1
    global_mean = float(splits["train"]["rating"].mean()) if rec.feedback == "explicit" else 0.0
    spec = InteractionSpec(
        len(vocabulary.users) + 1,
        len(vocabulary.items) + 1,
        int(tables["user_features"].shape[1]) if "user_features" in tables else 0,
        int(tables["item_features"].shape[1]) if "item_features" in tables else 0,
        global_mean,
    )
    return Prepared(vocabulary, spec, tables, splits, np.argsort(-counts, kind="stable"), feature_tables)


def evaluate_split(
    model: torch.nn.Module, prepared: Prepared, rec: RecommendConfig, name: str, history: dict[int, np.ndarray]
) -> dict[str, float]:
    part = prepared.splits[name]
    if rec.feedback == "explicit":
        with torch.no_grad():
            model.eval()
            batch = with_features(
                {"user": torch.from_numpy(part["user"]), "item": torch.from_numpy(part["item"])}, prepared.tables
            )
            predicted = model(batch).clamp(1, 5).numpy() if len(part["user"]) else np.zeros(0)
        return {"rmse": rmse(predicted, part["rating"]), "n": len(part["rating"])}
    keep = (part["user"] > 0) & (part["item"] > 0)
    users, targets = part["user"][keep], part["item"][keep]
    scores = mask_seen(score_all_items(model, users, prepared.tables), users, history)
    return {**ranking_metrics(scores, targets, rec.k), "n": int(keep.sum())}


def popularity_metrics(prepared: Prepared, rec: RecommendConfig, name: str, history: dict[int, np.ndarray]) -> dict:
    part = prepared.splits[name]
    keep = (part["user"] > 0) & (part["item"] > 0)
    users, targets = part["user"][keep], part["item"][keep]
    ranks = np.empty(len(prepared.popularity))
    ranks[prepared.popularity] = np.arange(len(prepared.popularity))
    scores = mask_seen(np.tile(-ranks, (len(users), 1)), users, history)
    return ranking_metrics(scores, targets, rec.k)


def train_recommender(
    config: RunConfig,
    out: str | Path | None = None,
    *,
    show_progress: bool = False,
    resume: str | Path | None = None,
    force: bool = False,
) -> RecommenderRun:
    """Train as the config says; returns the loaded RecommenderRun.

    `resume` continues a run (a directory, or "auto") from its newest good checkpoint and ends
    bitwise equal to the run that was never stopped (see training/checkpoint.py and training/resume.py);
    `force` lets harmless config changes (more epochs) through."""
    started = time.time()
    set_cpu_threads(config.train.threads)
    torch.manual_seed(config.seed)
    prepared = prepare(config)
    model = build_model(config.model.type, prepared.spec, 1, config.model.options())
    run_dir, checkpoint = open_run_directory(config, out, resume, force)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _train_into(run_dir, config, prepared, model, show_progress, started, checkpoint)
    except BaseException:
        (run_dir / "model.json").unlink(missing_ok=True)  # an unfinished run stays marked incomplete
        raise


def _train_into(
    run_dir: Path,
    config: RunConfig,
    prepared: Prepared,
    model: nn.Module,
    show_progress: bool,
    started: float,
    checkpoint: Checkpoint | None,
) -> RecommenderRun:
    from safetensors.torch import save

    from modelforge.training.recipe import start_environment
    from modelforge.training.tracking import open_trackers

    rec = config.recommend or RecommendConfig()
    topology = Topology(device=torch.device("cpu"))
    environment = start_environment(run_dir, config, topology, checkpoint)
    metrics_path = start_run_files(run_dir, config, environment, checkpoint.history if checkpoint else [])
    config = settle_auto(
        run_dir,
        config,
        model,
        topology,
        probe_loss(model, prepared, config),
        f"batch {config.train.batch_size}",
        environment,
        show_progress,
        tunes_precision=False,
    )

    with StopSignal() as stop:
        checkpointer = open_checkpointer(run_dir, topology, config.train, stop, checkpoint)
        purge_step = checkpoint.steps + 1 if checkpoint else None  # a resumed run's curves have no doubles
        steps_per_epoch = math.ceil(len(prepared.splits["train"]["user"]) / config.train.batch_size)
        trackers = open_trackers(run_dir, config.model_dump(mode="json"), steps_per_epoch, purge_step)
        hooks: list[Any] = [*trackers, checkpointer]  # logs first, so a stop raised by the checkpointer comes after
        try:
            state = fit_recommender(
                model, prepared, config, lambda row: append_jsonl(metrics_path, row), show_progress, hooks, checkpoint
            )
        except TrainingError as exc:
            checkpointer.flush()
            raise TrainingError(f"{exc}; last good checkpoint: {checkpointer.last_saved or 'none yet'}") from None
        finally:
            for hook in hooks:
                hook.close()

    train_part, valid_part = prepared.splits["train"], prepared.splits["valid"]
    seen_before_test = seen_items(
        np.concatenate([train_part["user"], valid_part["user"]]),
        np.concatenate([train_part["item"], valid_part["item"]]),
    )
    evaluation: dict[str, Any] = {"split": "test", **evaluate_split(model, prepared, rec, "test", seen_before_test)}
    if rec.feedback == "explicit":
        mean = np.full_like(prepared.splits["test"]["rating"], prepared.spec.global_mean)
        evaluation["baseline_global_mean_rmse"] = rmse(mean, prepared.splits["test"]["rating"])
    else:
        baseline = popularity_metrics(prepared, rec, "test", seen_before_test)
        evaluation.update({f"popularity_{k}": v for k, v in baseline.items()})
        evaluation["ndcg_ratio_to_popularity"] = evaluation[f"ndcg@{rec.k}"] / max(baseline[f"ndcg@{rec.k}"], 1e-12)
    evaluation.update(
        best_epoch=state.best_epoch,
        epochs=len(state.history),
        steps=state.steps,
        train_seconds=round(time.time() - started, 3),
    )
    save_run(run_dir, prepared, seen_before_test)
    atomic_write_bytes(run_dir / "model.safetensors", save(storable_tensors(model.state_dict())))
    model_info = {
        "type": config.model.type,
        "options": config.model.options(),
        "output_dim": 1,
        "input_spec": asdict(prepared.spec),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    finish_run_directory(run_dir, evaluation, environment, model_info)
    return load_recommender_run(run_dir)


def probe_loss(model: nn.Module, prepared: Prepared, config: RunConfig) -> Callable[[], torch.Tensor]:
    """One training batch's loss, for `train.threads: auto`'s probe (its own generator: the run's is untouched)."""
    rec, train_part = config.recommend or RecommendConfig(), prepared.splits["train"]
    rows = slice(0, config.train.batch_size)
    users, items = torch.from_numpy(train_part["user"][rows]), torch.from_numpy(train_part["item"][rows])
    batch = with_features({"user": users, "item": items}, prepared.tables)
    if rec.feedback == "explicit":
        ratings = torch.from_numpy(train_part["rating"][rows])
        return lambda: nn.functional.mse_loss(model(batch), ratings)
    return lambda: implicit_loss(model, batch, rec.negatives, prepared, torch.Generator().manual_seed(0))


def fit_recommender(
    model: nn.Module,
    prepared: Prepared,
    config: RunConfig,
    log_epoch: Callable[[dict[str, Any]], None],
    show_progress: bool = False,
    hooks: Sequence[LoopHook] = (),
    resume: Checkpoint | None = None,
) -> TrainingState:
    """Train `model` in place on the train split and score the valid split after each epoch; the hooks
    (trackers, checkpointer) are called as `fit` calls them. Ends with the best epoch's weights
    (train.keep_best). One generator, seeded by config.seed, draws each epoch's order and then the
    implicit negatives; checkpoints hold its state now and at the epoch's start, so a run resumed
    from `resume` redraws the epoch's order and goes on exactly as if it had never stopped."""
    rec, cfg = config.recommend or RecommendConfig(), config.train
    explicit = rec.feedback == "explicit"
    train_part = prepared.splits["train"]
    seen_train = seen_items(train_part["user"], train_part["item"])
    users, items = torch.from_numpy(train_part["user"]), torch.from_numpy(train_part["item"])
    ratings = torch.from_numpy(train_part["rating"])
    # no decay in the optimizer: train.weight_decay is the L2 on the embedding rows a batch touches (below)
    optimizer = OPTIMIZERS.get(cfg.optimizer)([{"params": list(model.parameters()), "weight_decay": 0.0}], cfg)
    steps_per_epoch = math.ceil(len(users) / cfg.batch_size)
    scheduler = build_schedule(optimizer, cfg, steps_per_epoch * cfg.epochs, steps_per_epoch)
    sampler, epoch_start = torch.Generator().manual_seed(config.seed), torch.Generator()
    parts = TrainingParts(model, optimizer, scheduler, generators={"sampler": sampler, "epoch_start": epoch_start})
    state = resume.restore(parts, Topology(device=torch.device("cpu"))) if resume is not None else TrainingState()
    monitor = "valid_rmse" if explicit else f"valid_ndcg@{rec.k}"
    chooser = ThreadChooser.for_config(cfg, torch.device("cpu"))

    for epoch in range(state.epoch, cfg.epochs + 1):
        model.train()
        epoch_started = time.perf_counter()
        if state.batch == 0:
            epoch_start.set_state(sampler.get_state())
            order = torch.randperm(len(users), generator=sampler)
        else:  # resumed mid-epoch: the sampler is restored; the order is redrawn from the epoch's start
            order = torch.randperm(len(users), generator=torch.Generator().set_state(epoch_start.get_state()))
        for index in range(state.batch, steps_per_epoch):
            with chooser.timed(state.steps):
                rows = order[index * cfg.batch_size : (index + 1) * cfg.batch_size]
                batch = with_features({"user": users[rows], "item": items[rows]}, prepared.tables)
                if explicit:
                    loss = nn.functional.mse_loss(model(batch), ratings[rows])
                else:
                    loss = implicit_loss(model, batch, rec.negatives, prepared, sampler)
                # L2 on the rows this batch touched (the usual MF regularizer), via weight_decay
                loss = loss + cfg.weight_decay * embedding_penalty(model, batch)
                loss_value = loss.item()
                if not math.isfinite(loss_value):
                    raise TrainingError(f"loss is {loss_value} at epoch {epoch} step {state.steps + 1}; lower train.lr")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip) if cfg.grad_clip else None
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                state.steps, state.batch = state.steps + 1, index + 1
                state.running_loss, state.seen = state.running_loss + loss_value * len(rows), state.seen + len(rows)
                step = StepInfo(loss_value, grad_norm, len(rows), optimizer.param_groups[0]["lr"])
                for hook in hooks:
                    hook.after_step(parts, state, step)

        train_loss = state.running_loss / max(state.seen, 1)
        row: dict[str, Any] = {"epoch": epoch, "step": state.steps, "train_loss": train_loss}
        row.update({f"valid_{k}": v for k, v in evaluate_split(model, prepared, rec, "valid", seen_train).items()})
        row.update(lr=optimizer.param_groups[0]["lr"], seconds=time.perf_counter() - epoch_started)
        if chooser.measures:
            row["threads"] = chooser.chosen
        state.history.append(row)
        log_epoch(row)
        if show_progress:
            print(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
        keep_if_best(state, model, row[monitor], epoch, lower_is_better=explicit, keep_weights=cfg.keep_best)
        state.epoch, state.batch, state.seen, state.running_loss = epoch + 1, 0, 0, 0.0
        for hook in hooks:
            hook.after_epoch(parts, state, row)

    end_training(model, parts, state, hooks)
    return state


def implicit_loss(
    model: torch.nn.Module, batch: Batch, negatives: int, prepared: Prepared, generator: torch.Generator
) -> torch.Tensor:
    """Binary cross-entropy: each positive against `negatives` uniformly drawn items (1..n)."""
    n = len(batch["user"])
    sampled = torch.randint(1, prepared.spec.n_items, (n * negatives,), generator=generator)
    negative = with_features({"user": batch["user"].repeat(negatives), "item": sampled}, prepared.tables)
    logits = torch.cat([model(batch), model(negative)])
    labels = torch.cat([torch.ones(n), torch.zeros(n * negatives)])
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)


def embedding_penalty(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    user = model.encode_users({k: v for k, v in batch.items() if k.startswith("user")})  # type: ignore[operator]
    item = model.encode_items({k: v for k, v in batch.items() if k.startswith("item")})  # type: ignore[operator]
    return (user[:, :-2].pow(2).sum(-1) + item[:, :-2].pow(2).sum(-1)).mean()


# ----------------------------------------------------------------------------- run directory
def save_run(run_dir: Path, prepared: Prepared, seen: dict[int, np.ndarray]) -> None:
    """What predict needs beside the weights: the id vocabularies, popularity list and feature tables
    (preprocessing.json), and each user's seen items and the feature matrices (interactions.safetensors)."""
    from safetensors.torch import save

    preprocessing = {
        "task": "recommendation",
        "users": prepared.vocabulary.users,
        "items": prepared.vocabulary.items,
        "popularity": [int(i) for i in prepared.popularity[:1000] if i > 0],
        "feature_tables": prepared.feature_tables,
    }
    atomic_write_json(run_dir / "preprocessing.json", preprocessing)
    users = np.concatenate([np.full(len(v), u) for u, v in seen.items()]) if seen else np.zeros(0)
    items = np.concatenate(list(seen.values())) if seen else np.zeros(0)
    tensors = {
        "seen_users": torch.from_numpy(users.astype(np.int64)),
        "seen_items": torch.from_numpy(items.astype(np.int64)),
    }
    tensors.update({k: v.contiguous() for k, v in prepared.tables.items()})
    atomic_write_bytes(run_dir / "interactions.safetensors", save(tensors))


@dataclass(frozen=True)
class TopItems:
    """One user's recommendations: (item, score) best first; cold_start when the user is unknown."""

    items: list[tuple[str, float]]
    cold_start: bool


@dataclass
class RecommenderRun(RunDirectory):
    """A trained recommender: `predict` gives each user's top-K unseen items; `evaluate` scores held-out rows."""

    path: Path
    config: RunConfig
    model: torch.nn.Module
    model_info: dict[str, Any]
    vocabulary: Vocabulary
    popularity: list[int]
    tables: Batch
    seen: dict[int, np.ndarray]

    @property
    def task(self) -> str:
        return str(self.config.task)

    @property
    def settings(self) -> RecommendConfig:
        return self.config.recommend or RecommendConfig()

    @property
    def headline(self) -> tuple[str, ...]:
        """The metrics a summary shows: RMSE beside the global mean, or ranking beside popularity."""
        if self.settings.feedback == "explicit":
            return ("rmse", "baseline_global_mean_rmse")
        k = self.settings.k
        return (
            f"recall@{k}",
            f"ndcg@{k}",
            f"popularity_recall@{k}",
            f"popularity_ndcg@{k}",
            "ndcg_ratio_to_popularity",
        )

    def predict(self, data: pd.DataFrame | str | Path | list[Any], k: int | None = None) -> pd.DataFrame:
        """Rows with a user and an item column: the predicted rating (explicit) or score (implicit) per row.
        Rows with users only: each user's top-K unseen items. Unknown users (and, for pairs, unknown
        items) are answered by the fallback — the popularity list, or the global mean rating — with
        cold_start=True."""
        frame = self._frame(data)
        if self.settings.item in frame.columns:
            return self.predict_pairs(frame)
        return self.recommend(self._users(frame), k)

    def _frame(self, data: pd.DataFrame | str | Path | list[Any]) -> pd.DataFrame:
        if isinstance(data, list):
            frame = pd.DataFrame({self.settings.user: [str(u) for u in data]})
        else:
            frame = data if isinstance(data, pd.DataFrame) else read_data(data, self.config.data.bad_rows)
        if frame.empty:
            raise DataError("predict: no rows to predict")
        return frame

    def _users(self, frame: pd.DataFrame) -> pd.Series:
        if self.settings.user not in frame.columns:
            raise DataError(f"predict: the rows need a {self.settings.user!r} column; got {', '.join(frame.columns)}")
        return frame[self.settings.user].astype(str)

    def recommend(self, users: pd.Series, k: int | None = None) -> pd.DataFrame:
        """Top-K unseen items per user; unknown users get the popularity list with cold_start=True."""
        rows = []
        for user, top in zip(users, self.top_items(users, k), strict=True):
            rows += [(user, rank + 1, item, score, top.cold_start) for rank, (item, score) in enumerate(top.items)]
        return pd.DataFrame(rows, columns=["user", "rank", "item", "score", "cold_start"])

    def top_items(self, users: pd.Series, k: int | None = None) -> list[TopItems]:
        """Each user's best K unseen items, best first (NaN scores for the popularity fallback)."""
        k = k or self.settings.k
        ids = self.vocabulary.user_ids(users)
        scores = mask_seen(score_all_items(self.model, ids, self.tables), ids, self.seen)
        out = []
        for index, row in zip(ids, scores, strict=True):
            if index == 0:
                out.append(TopItems([(self.vocabulary.items[i - 1], float("nan")) for i in self.popularity[:k]], True))
                continue
            top = np.argsort(-row, kind="stable")[:k]
            top = top[np.isfinite(row[top])]  # fewer than K unseen items: never offer a seen one
            out.append(TopItems([(self.vocabulary.items[i - 1], float(row[i])) for i in top], False))
        return out

    def predict_pairs(self, frame: pd.DataFrame) -> pd.DataFrame:
        """One value per (user, item) row; a row with an unknown user or item gets the fallback."""
        users = self._users(frame)
        items = frame[self.settings.item].astype(str)
        user_ids, item_ids = self.vocabulary.user_ids(users), self.vocabulary.item_ids(items)
        batch = with_features({"user": torch.from_numpy(user_ids), "item": torch.from_numpy(item_ids)}, self.tables)
        with torch.no_grad():
            values = self.model(batch).numpy().astype(np.float64)
        cold = (user_ids == 0) | (item_ids == 0)
        explicit = self.settings.feedback == "explicit"
        if explicit:
            values = np.clip(values, 1, 5)
            values[cold] = float(self.model_info["input_spec"]["global_mean"])
        else:
            values[cold] = np.nan
        column = "rating" if explicit else "score"
        return pd.DataFrame({"user": users, "item": items, column: values, "cold_start": cold})

    def evaluate(self, data: pd.DataFrame | str | Path) -> dict[str, Any]:
        """RMSE (explicit) or recall@K/NDCG@K (implicit) on held-out interaction rows."""
        rec = self.settings
        frame = data if isinstance(data, pd.DataFrame) else read_data(data, self.config.data.bad_rows)
        for column in (rec.user, rec.item) + ((rec.rating,) if rec.feedback == "explicit" and rec.rating else ()):
            if column not in frame.columns:
                raise DataError(f"evaluate: column {column!r} missing; got {', '.join(frame.columns)}")
        users, items = self.vocabulary.user_ids(frame[rec.user]), self.vocabulary.item_ids(frame[rec.item])
        known = (users > 0) & (items > 0)
        result: dict[str, Any] = {"n": int(known.sum()), "unknown_rows": int((~known).sum())}
        if rec.feedback == "explicit":
            batch = with_features({"user": torch.from_numpy(users), "item": torch.from_numpy(items)}, self.tables)
            with torch.no_grad():
                predicted = self.model(batch).clamp(1, 5).numpy()
            truth = pd.to_numeric(frame[rec.rating], errors="coerce").to_numpy(dtype=np.float64)
            result["rmse"] = rmse(predicted[known], truth[known])
            return result
        scores = mask_seen(score_all_items(self.model, users[known], self.tables), users[known], self.seen)
        result.update(ranking_metrics(scores, items[known], rec.k))
        return result


def load_recommender_run(path: str | Path) -> RecommenderRun:
    from safetensors.torch import load_file

    path = Path(path)
    config, info = read_finished_run(path)
    preprocessing = json.loads((path / "preprocessing.json").read_text())
    model = build_model(info["type"], InteractionSpec(**info["input_spec"]), 1, info["options"])
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    model.eval()
    stored = load_file(str(path / "interactions.safetensors"))
    seen = seen_items(stored.pop("seen_users").numpy(), stored.pop("seen_items").numpy())
    vocabulary = Vocabulary(preprocessing["users"], preprocessing["items"])
    return RecommenderRun(path, config, model, info, vocabulary, preprocessing["popularity"], stored, seen)
