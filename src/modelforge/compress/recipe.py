"""The compression recipe: run → prune → fine-tune → quantize → a new run directory, top to bottom.

    modelforge compress runs/digits --out runs/digits-int8 --quantize int8-dynamic
    modelforge compress runs/digits --out runs/digits-p50 --prune 0.5 --finetune-epochs 3

Every input (run, options, calibration file) is checked before anything is written.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from modelforge.compress.prune import finetune, magnitude_prune, make_permanent, nonzero_share, structured_prune
from modelforge.compress.quantize import (
    QUANTIZERS,
    STATIC_MODEL_TYPES,
    compact_state,
    example_inputs,
    quantized_parameter_count,
)
from modelforge.compress.variant import (
    copy_run_metadata,
    finish_variant,
    load_source_run,
    parameter_count,
    run_splits,
    save_weights,
    score_model,
)
from modelforge.errors import DataError, ModelforgeError
from modelforge.files import append_jsonl, atomic_write_text
from modelforge.run import Run, staged_run_directory
from modelforge.tasks import Task

PRUNE_METHODS = ("magnitude", "structured")
CALIBRATION_ROWS = 512


@dataclass(frozen=True)
class CompressOptions:
    prune: float | None = None
    prune_method: str = "magnitude"
    prune_scope: str = "global"
    finetune_epochs: int = 0
    finetune_lr: float | None = None
    quantize: str | None = None
    calibration: Path | None = None

    def check_for_task(self, task: Task) -> None:
        """Refuse in one line what `task`'s compressor does not take (`Task.quantize_kinds`,
        `Task.compress_prunes`), before anything is loaded."""
        kinds = task.quantize_kinds
        refused = [f"--quantize {self.quantize}"] if self.quantize not in (None, *kinds) else []
        if not task.compress_prunes:
            given = {"--prune": self.prune is not None, "--finetune-epochs": bool(self.finetune_epochs)}
            refused += [flag for flag, used in given.items() if used]
        if self.calibration is not None and "int8-static" not in kinds:
            refused.append("--calibration")
        if refused or (not task.compress_prunes and self.quantize is None):
            takes = " or ".join(f"--quantize {kind}" for kind in kinds) + ("" if task.compress_prunes else " only")
            got = ", ".join(refused) or "no --quantize"
            raise ModelforgeError(f"compress: {task.name} runs take {takes}, got {got}")

    def check(self, run: Run) -> None:
        if self.prune is None and self.quantize is None:
            raise ModelforgeError("compress: nothing to do; pass --prune AMOUNT and/or --quantize KIND")
        if self.prune is not None and not 0 < self.prune < 1:
            raise ModelforgeError(f"--prune: must be a share between 0 and 1 (exclusive), got {self.prune}")
        if self.prune_method not in PRUNE_METHODS:
            raise ModelforgeError(f"--prune-method: expected {' or '.join(PRUNE_METHODS)}, got {self.prune_method!r}")
        if self.prune_scope not in ("global", "layer"):
            raise ModelforgeError(f"--prune-scope: expected global or layer, got {self.prune_scope!r}")
        if self.finetune_epochs < 0:
            raise ModelforgeError(f"--finetune-epochs: must be >= 0, got {self.finetune_epochs}")
        if self.quantize is not None and self.quantize not in QUANTIZERS:
            raise ModelforgeError(f"--quantize: expected {' or '.join(QUANTIZERS.names())}, got {self.quantize!r}")
        model_type = run.model_info["type"]
        if self.quantize == "int8-static" and model_type not in STATIC_MODEL_TYPES:
            raise ModelforgeError(
                f"--quantize int8-static: supports model types {', '.join(STATIC_MODEL_TYPES)} "
                f"(conv nets); this run is {model_type}; use int8-dynamic"
            )
        if self.calibration is not None and self.quantize != "int8-static":
            raise ModelforgeError("--calibration: only used with --quantize int8-static")


def calibration_batches(
    run: Run, path: Path | None, fallback: dict[str, torch.Tensor]
) -> list[dict[str, torch.Tensor]]:
    """Batches of real rows for static quantization: the given file, else the run's train split."""
    if path is None:
        inputs = {k: v for k, v in fallback.items() if k != "target"}
    else:
        from modelforge.data.preprocess import apply_column_policies
        from modelforge.data.readers import read_data

        if not path.exists():
            raise DataError(f"--calibration {path}: file not found")
        frame = apply_column_policies(read_data(path), run.config.data.drop, run.config.data.hash)
        try:
            arrays = run.preprocessor.transform_inputs(frame)
        except DataError as exc:
            raise DataError(f"--calibration {path}: {exc}") from None
        inputs = {k: torch.from_numpy(v.copy()) for k, v in arrays.items()}
    n_rows = min(len(next(iter(inputs.values()))), CALIBRATION_ROWS)
    return [{k: v[start : start + 64] for k, v in inputs.items()} for start in range(0, n_rows, 64)]


def compress_run(source: str | Path, out: str | Path, options: CompressOptions) -> Path:
    """Write a compressed copy of a run to `out` (a normal run directory); returns `out`."""
    from modelforge.config import ModelConfig, config_to_yaml
    from modelforge.data.preprocess import InputSpec
    from modelforge.models import build_model

    run = load_source_run(source, "compress")
    options.check(run)
    out = Path(out)
    info = copy.deepcopy(run.model_info)
    splits = run_splits(run)
    calibration = (
        calibration_batches(run, options.calibration, splits.train) if options.quantize == "int8-static" else None
    )
    spec = InputSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in info["input_spec"].items()})

    with staged_run_directory(out) as dest:
        copy_run_metadata(run.path, dest)
        model: nn.Module = copy.deepcopy(run.model)
        model_options = dict(info["options"])
        record: dict[str, Any] = {"source": str(Path(source).resolve())}

        if options.prune is not None and options.prune_method == "magnitude":
            magnitude_prune(model, options.prune, options.prune_scope)
        elif options.prune is not None:
            state, model_options = structured_prune(model, info["type"], model_options, options.prune)
            model = build_model(info["type"], spec, info["output_dim"], model_options)
            model.load_state_dict(state)
        if options.prune is not None:
            record.update(prune=options.prune, prune_method=options.prune_method, prune_scope=options.prune_scope)

        if options.finetune_epochs:
            finetune(
                model,
                run,
                splits,
                options.finetune_epochs,
                options.finetune_lr,
                lambda row: append_jsonl(dest / "metrics.jsonl", row),
            )
            record["finetune_epochs"] = options.finetune_epochs
        make_permanent(model)
        model.eval()
        info.update(options=model_options, parameters=parameter_count(model), nonzero_share=nonzero_share(model))

        scored: nn.Module = model
        if options.quantize is None:
            save_weights(model.state_dict(), dest)
        else:
            quantizer = QUANTIZERS.get(options.quantize)
            scored = quantizer(model, calibration or [example_inputs(spec)])
            save_weights(compact_state(scored), dest)
            info.update(quantization=options.quantize, parameters=quantized_parameter_count(scored))
            record["quantize"] = options.quantize
        info["compression"] = record

        new_config = run.config.model_copy(update={"model": ModelConfig(type=info["type"], **model_options)})
        atomic_write_text(dest / "config.yaml", config_to_yaml(new_config))
        evaluation = {"split": "test" if splits.test is not None else "valid"}
        evaluation.update(score_model(scored, run, splits.held_out))
        finish_variant(dest, info, evaluation)
    return out
