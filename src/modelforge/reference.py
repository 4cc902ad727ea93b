"""The docs site's reference tables, generated from the schema and the model and task registries.

`python -m modelforge.reference` prints them; `docs/build_readme.py` writes them into the pages of
docs/site/reference/ and a test checks those pages hold exactly this text, so the documented keys,
defaults, model options and tasks cannot drift from the code.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from modelforge.config import RunConfig, Section

CONFIG_BEGIN, CONFIG_END = "<!-- config-reference:begin -->", "<!-- config-reference:end -->"
MODELS_BEGIN, MODELS_END = "<!-- model-reference:begin -->", "<!-- model-reference:end -->"
TASKS_BEGIN, TASKS_END = "<!-- task-reference:begin -->", "<!-- task-reference:end -->"
HTTP_BEGIN, HTTP_END = "<!-- http-reference:begin -->", "<!-- http-reference:end -->"


def _type_text(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return " \\| ".join(str(value) for value in get_args(annotation))
    if origin in (Union, types.UnionType):
        return " \\| ".join(_type_text(arg) for arg in get_args(annotation) if arg is not type(None))
    if origin is typing.Annotated:
        return _type_text(get_args(annotation)[0])
    if origin in (list, tuple):
        inner = ", ".join(_type_text(arg) for arg in get_args(annotation) if arg is not Ellipsis)
        return f"list[{inner}]" if origin is list else f"({inner})"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    return getattr(annotation, "__name__", str(annotation))


def _default_text(field: Any) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if isinstance(value, BaseModel):
        return ""
    return "" if value is None else f"`{value}`"


def _sections(annotation: Any) -> list[type[Section]]:
    """Section models reachable from a field's annotation (through Optional, lists, unions)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _sections(arg)]


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows, nested = [], []
    for name, field in model.model_fields.items():
        key = field.alias or name
        sections = _sections(field.annotation)
        if sections and all(s.__name__ != "ModelConfig" for s in sections):
            nested += [(f"{prefix}{key}", s) for s in sections]
            if len(sections) > 1:  # a tagged union: one table per member, named by its tag
                continue
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{prefix}{key}` | {_type_text(field.annotation)} | {_default_text(field)} | {description} |")
    for path, section in nested:
        tag = section.model_fields.get("type")
        label = f"{path}[] (type: {tag.default})" if tag is not None and tag.default else path
        summary = (section.__doc__ or "").strip().split("\n")[0]
        rows.append(f"| **{label}** | section | | {summary} |")
        item = f"{path}[]." if path == "features" else f"{path}."
        rows += [row for row in _rows(section, item) if not row.startswith(f"| `{item}type` | ")]
    return rows


def config_reference() -> str:
    header = ["| key | type | default | meaning |", "|---|---|---|---|"]
    return "\n".join(header + _rows(RunConfig, ""))


def model_reference() -> str:
    import inspect

    from modelforge.models.registry import MODELS, load_families

    load_families()
    lines = ["| model.type | accepts | what it is | options (default) |", "|---|---|---|---|"]
    for name in MODELS.names():
        entry = MODELS.get(name)
        parameters = inspect.signature(entry.builder).parameters.values()
        options = ", ".join(f"`{p.name}` ({p.default})" for p in parameters if p.kind == p.KEYWORD_ONLY)
        fused = [kind for kind in entry.fuses if kind not in entry.accepts]
        accepts = ", ".join(entry.accepts) + (f" (+ {', '.join(fused)})" if fused else "")
        lines.append(f"| `{name}` | {accepts} | {entry.description} | {options} |")
    return "\n".join(lines)


def task_reference() -> str:
    from modelforge.tasks import RUN_VERBS, TASKS

    lines = [
        "| task | what it predicts | verbs beside train, audit, runs | train.* keys it reads "
        "| model.* keys beside the model's |",
        "|---|---|---|---|---|",
    ]
    for name in TASKS.names():
        task = TASKS.get(name)
        verbs = ", ".join(v for v in RUN_VERBS if task.supports(v))
        keys = ", ".join(sorted(task.train_keys))
        model_keys = ", ".join(sorted(task.model_keys))
        lines.append(f"| `{name}` | {task.summary} | {verbs} | {keys} | {model_keys} |")
    return "\n".join(lines)


def _schema_type(schema: dict[str, Any]) -> str:
    """A JSON schema as a short type: `integer ≥ 1`, `array of ClassPrediction`, `string \\| null`."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in schema:
        return " \\| ".join(_schema_type(option) for option in schema["anyOf"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_schema_type(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {_schema_type(schema['additionalProperties'])}"
    bounds = [
        f"{sign} {int(schema[key]) if float(schema[key]).is_integer() else schema[key]}"
        for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("maxLength", "length ≤"))
        if key in schema
    ]
    return " ".join([kind, ", ".join(bounds)]).strip()


def http_reference() -> str:
    """The server's endpoints and message schemas, from the OpenAPI schema FastAPI builds for the app."""
    from modelforge.serve.app import create_app

    schema = create_app({}).openapi()  # the schema does not depend on the models served
    lines = ["| method and path | what it does | request body | status codes |", "|---|---|---|---|"]
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            request = _schema_type(body["schema"]) if body else ""
            codes = ", ".join(sorted(operation.get("responses", {})))
            lines.append(f"| `{method.upper()} {path}` | {operation.get('summary', '')} | {request} | {codes} |")
    for name, component in sorted(schema["components"]["schemas"].items()):
        lines += ["", f"### {name}", ""]
        if component.get("description"):
            lines += [" ".join(component["description"].split()), ""]
        required = set(component.get("required", []))
        lines += ["| field | type | required | default | meaning |", "|---|---|---|---|---|"]
        for field, spec in component.get("properties", {}).items():
            default = f"`{spec['default']!r}`" if "default" in spec else ""
            meaning = " ".join(spec.get("description", "").split()).replace("|", "\\|")
            yes = "yes" if field in required else ""
            lines.append(f"| `{field}` | {_schema_type(spec)} | {yes} | {default} | {meaning} |")
    return "\n".join(lines)


REFERENCES = (
    (CONFIG_BEGIN, config_reference, CONFIG_END),
    (MODELS_BEGIN, model_reference, MODELS_END),
    (TASKS_BEGIN, task_reference, TASKS_END),
    (HTTP_BEGIN, http_reference, HTTP_END),
)


def with_references(text: str) -> str:
    """`text` (a docs page) with each reference table between its markers regenerated."""
    for begin, build, end in REFERENCES:
        head, found, rest = text.partition(begin)
        if not found:
            continue
        _, _, tail = rest.partition(end)
        text = f"{head}{begin}\n{build()}\n{end}{tail}"
    return text


def main() -> None:
    """Print the tables, or with `--write FILE` regenerate them in place."""
    import sys
    from pathlib import Path

    if len(sys.argv) == 3 and sys.argv[1] == "--write":
        path = Path(sys.argv[2])
        path.write_text(with_references(path.read_text()))
        return
    for begin, build, end in REFERENCES:
        print(begin, build(), end, "", sep="\n")


if __name__ == "__main__":
    main()
