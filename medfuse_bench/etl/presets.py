"""Task definitions as configuration: named presets of windows, view filter and minimum stay, plus per-task overrides.

A task definition fixes, for one task, which hours of the stay feed the time series, within which hours an X-ray may
be linked, which views count, and how long a stay must be. ``None`` for a window means "the whole stay" (until
outtime); ``None`` for the minimum stay means "no minimum".

Presets:

- ``medfuse``: the paper's rules with the 2023 fix of the 48 h X-ray window (mortality: 48 h of time series, X-ray in
  the first 48 h, stays of at least 48 h; phenotyping: whole stay for both). AP views only.
- ``medfuse-2022``: as ``medfuse`` but the mortality X-ray window is the whole stay, as in the code that produced the
  published numbers. The X-ray can then be taken after the 48 h of time series: a look-ahead leak, flagged
  ``leaky`` wherever the definition is recorded. Only for reproducing the published numbers.
- ``drfuse-48h``: phenotyping cut at 48 h for both time series and X-ray, stays of at least 48 h (mortality as
  ``medfuse``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from typing import Any

from medfuse_bench.errors import MedfuseError
from medfuse_bench.resources import TASKS

log = logging.getLogger(__name__)

PRESET_NAMES: tuple[str, ...] = ("medfuse", "medfuse-2022", "drfuse-48h")

#: The parameter keys a preset fixes per task and an override may change.
PARAMETERS: tuple[str, ...] = ("ts_window_hours", "cxr_window_hours", "min_stay_hours", "views")


@dataclasses.dataclass(frozen=True)
class TaskDefinition:
    """The windows, view filter and minimum stay length of one task under one preset (hours from intime)."""

    task: str
    preset: str
    ts_window_hours: float | None
    cxr_window_hours: float | None
    min_stay_hours: float | None
    views: tuple[str, ...]
    overridden: tuple[str, ...] = ()

    @property
    def leaky(self) -> bool:
        """True when a linked X-ray may be taken after the last hour of time series (look-ahead)."""
        if self.ts_window_hours is None:
            return False
        return self.cxr_window_hours is None or self.cxr_window_hours > self.ts_window_hours

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["views"] = list(self.views)
        out["overridden"] = list(self.overridden)
        out["leaky"] = self.leaky
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskDefinition:
        return cls(
            task=data["task"],
            preset=data["preset"],
            ts_window_hours=data["ts_window_hours"],
            cxr_window_hours=data["cxr_window_hours"],
            min_stay_hours=data["min_stay_hours"],
            views=tuple(data["views"]),
            overridden=tuple(data.get("overridden", ())),
        )


_MEDFUSE: dict[str, dict[str, Any]] = {
    "in-hospital-mortality": {
        "ts_window_hours": 48.0, "cxr_window_hours": 48.0, "min_stay_hours": 48.0, "views": ("AP",),
    },
    "phenotyping": {"ts_window_hours": None, "cxr_window_hours": None, "min_stay_hours": None, "views": ("AP",)},
}

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "medfuse": _MEDFUSE,
    "medfuse-2022": {
        "in-hospital-mortality": {**_MEDFUSE["in-hospital-mortality"], "cxr_window_hours": None},
        "phenotyping": dict(_MEDFUSE["phenotyping"]),
    },
    "drfuse-48h": {
        "in-hospital-mortality": dict(_MEDFUSE["in-hospital-mortality"]),
        "phenotyping": {"ts_window_hours": 48.0, "cxr_window_hours": 48.0, "min_stay_hours": 48.0, "views": ("AP",)},
    },
}


def parse_overrides(text: str | None) -> dict[str, Any]:
    """Parse the ``--overrides`` JSON string (empty or None = no overrides)."""
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MedfuseError(f"--overrides is not valid JSON ({exc}); pass e.g. '{{\"cxr_window_hours\": 24}}'") from exc
    if not isinstance(value, dict):
        raise MedfuseError("--overrides must be a JSON object of etl.task_overrides keys")
    return value


def _task_overrides(task: str, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Accept either the task's own override mapping or the whole ``etl.task_overrides`` mapping (keyed by task)."""
    if not overrides:
        return {}
    if any(key in TASKS for key in overrides):
        unknown = [key for key in overrides if key not in TASKS]
        if unknown:
            raise MedfuseError(f"etl.task_overrides: unknown task '{unknown[0]}'; expected one of {', '.join(TASKS)}")
        return dict(overrides.get(task) or {})
    return dict(overrides)


def _number_or_none(key: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise MedfuseError(
            f"etl.task_overrides key '{key}' must be a non-negative number of hours or null, got {value!r}"
        )
    return float(value)


def task_definition(task: str, preset: str = "medfuse", overrides: Mapping[str, Any] | None = None) -> TaskDefinition:
    """The definition of ``task`` under ``preset`` with ``overrides`` (keys of ``etl.task_overrides.<task>``) applied.

    >>> task_definition("in-hospital-mortality", "medfuse-2022").leaky
    True
    >>> task_definition("phenotyping", "medfuse", {"ts_window_hours": 24}).ts_window_hours
    24.0
    """
    if task not in TASKS:
        raise MedfuseError(f"unknown task '{task}'; expected one of {', '.join(TASKS)}")
    if preset not in PRESETS:
        raise MedfuseError(f"unknown preset '{preset}' (etl.cohort_preset); expected one of {', '.join(PRESET_NAMES)}")
    params = dict(PRESETS[preset][task])
    extra = _task_overrides(task, overrides)
    for key, value in extra.items():
        if key not in PARAMETERS:
            raise MedfuseError(
                f"etl.task_overrides.{task}: unknown key '{key}'; expected one of {', '.join(PARAMETERS)}"
            )
        if key == "views":
            if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) for v in value):
                raise MedfuseError(f"etl.task_overrides.{task}.views must be a non-empty list of ViewPosition strings")
            params[key] = tuple(value)
        else:
            params[key] = _number_or_none(f"{task}.{key}", value)
    return TaskDefinition(task=task, preset=preset, overridden=tuple(sorted(extra)), **params)


def warn_if_leaky(definition: TaskDefinition) -> None:
    """Log a warning when the definition links X-rays taken after its time-series window."""
    if definition.leaky:
        log.warning(
            "task %s under preset %s is LEAKY: an X-ray may be linked after the first %s h of time series "
            "(look-ahead); use it only to reproduce published numbers",
            definition.task,
            definition.preset,
            definition.ts_window_hours,
        )
