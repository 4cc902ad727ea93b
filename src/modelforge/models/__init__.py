"""Models: a registry by name (`registry.py`) and one file per family."""

from modelforge.models.registry import MODELS, build_model, model_options

__all__ = ["MODELS", "build_model", "model_options"]
