"""Defaults of the evaluation settings, read from the config schema (its one source of truth)."""

from __future__ import annotations

from typing import Any

from medfuse_bench.config import config_default


def evaluation_default(key: str) -> Any:
    """Default of ``evaluation.<key>`` in config.schema.yaml.

    >>> evaluation_default("bootstrap"), evaluation_default("seed")
    (1000, 2022)
    """
    return config_default("evaluation", key)
