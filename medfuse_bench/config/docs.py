"""Render the configuration schema as a Markdown reference (docs/configuration.md)."""

from __future__ import annotations

import json
from typing import Any

from medfuse_bench.config import SCALES, load_schema


def _type(spec: dict[str, Any]) -> str:
    if "enum" in spec:
        return " \\| ".join("null" if v is None else f"`{v}`" for v in spec["enum"])
    t = spec.get("type", "object")
    return " \\| ".join(t) if isinstance(t, list) else str(t)


def _rows(props: dict[str, Any], prefix: str = "") -> list[tuple[str, str, str, str]]:
    rows = []
    for key, spec in props.items():
        name = f"{prefix}{key}"
        default = spec.get("default", "")
        default_s = "" if default in ({}, "") else f"`{json.dumps(default)}`"
        desc = " ".join(str(spec.get("description", "")).split())
        rows.append((name, _type(spec), default_s, desc))
        if "properties" in spec:
            rows.extend(_rows(spec["properties"], prefix=f"{name}."))
        for pattern, sub in spec.get("patternProperties", {}).items():
            rows.extend(_rows(sub.get("properties", {}), prefix=f"{name}.<task>."))
    return rows


def render_config_docs() -> str:
    schema = load_schema()
    lines = [
        "# Configuration reference",
        "",
        "Generated from `medfuse_bench/config/config.schema.yaml` by `medfuse-bench config --docs`;",
        "a test keeps this file in sync with the schema. Keys left null take the value of the size preset `scale`",
        "(the table at the end).",
        "",
        "| key | type | default | description |",
        "|---|---|---|---|",
    ]
    for name, typ, default, desc in _rows(schema["properties"]):
        lines.append(f"| `{name}` | {typ} | {default} | {desc} |")
    lines += ["", "## Scales", "", "| scale | key | value |", "|---|---|---|"]
    for scale, sections in SCALES.items():
        for section, values in sections.items():
            for key, value in values.items():
                lines.append(f"| {scale} | `{section}.{key}` | `{json.dumps(value)}` |")
    return "\n".join(lines) + "\n"
