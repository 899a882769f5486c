"""What differs between two cohort receipts: settings, then per task and split the counts and which hash."""

from __future__ import annotations

from typing import Any

#: Top-level fields compared as settings (``tasks`` is compared task by task).
SETTINGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("format", ("format",)),
    ("package version", ("package_version",)),
    ("data", ("data",)),
    ("MIMIC-IV version", ("mimic_iv", "version")),
    ("MIMIC-IV layout", ("mimic_iv", "layout")),
    ("cohort preset", ("cohort_preset",)),
    ("leaky", ("leaky",)),
    ("fidelity preset", ("fidelity", "preset")),
)

_HASHES = (("table_sha256", "samples table hash"), ("timeseries_sha256", "time-series hash"))


def _get(obj: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def _diff(a: Any, b: Any) -> str:
    return f"{a} -> {b}" if not isinstance(a, int) or not isinstance(b, int) or isinstance(a, bool) \
        else f"{a} -> {b} ({b - a:+d})"


def compare_receipts(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """One line per difference (empty when the receipts agree).

    >>> r = {"format": 1, "tasks": {"t": {"splits": {"test": {"stays": 3, "subjects": 3, "paired": 1,
    ...      "positives": {"y": 1}, "table_sha256": "aa", "timeseries_sha256": "bb"}}}}}
    >>> import copy; s = copy.deepcopy(r); s["tasks"]["t"]["splits"]["test"].update(stays=4, table_sha256="cc")
    >>> compare_receipts(r, s)
    ['t / test: stays 3 -> 4 (+1)', 't / test: samples table hash differs (aa... vs cc...)']
    >>> compare_receipts(r, r)
    []
    """
    lines = [f"{name}: {_diff(_get(a, keys), _get(b, keys))}"
             for name, keys in SETTINGS if _get(a, keys) != _get(b, keys)]
    switches_a, switches_b = _get(a, ("fidelity", "switches")) or {}, _get(b, ("fidelity", "switches")) or {}
    for name in sorted(set(switches_a) | set(switches_b)):
        if switches_a.get(name) != switches_b.get(name):
            lines.append(f"fidelity switch {name}: {switches_a.get(name)} -> {switches_b.get(name)}")
    tasks_a, tasks_b = a.get("tasks") or {}, b.get("tasks") or {}
    for task in [*tasks_a, *(t for t in tasks_b if t not in tasks_a)]:
        if task not in tasks_b or task not in tasks_a:
            lines.append(f"{task}: only in the {'first' if task in tasks_a else 'second'} receipt")
            continue
        ta, tb = tasks_a[task], tasks_b[task]
        for key in ("definition", "timestep_hours", "normalizer"):
            if ta.get(key) != tb.get(key):
                lines.append(f"{task}: {key.replace('_', ' ')} {_diff(ta.get(key), tb.get(key))}")
        lines += _compare_splits(task, ta.get("splits") or {}, tb.get("splits") or {})
    return lines


def _compare_splits(task: str, a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    lines = []
    for split in [*a, *(s for s in b if s not in a)]:
        where = f"{task} / {split}"
        if split not in a or split not in b:
            lines.append(f"{where}: only in the {'first' if split in a else 'second'} receipt")
            continue
        sa, sb = a[split], b[split]
        for key in ("stays", "subjects", "paired"):
            if sa.get(key) != sb.get(key):
                lines.append(f"{where}: {key} {_diff(sa.get(key), sb.get(key))}")
        pa, pb = sa.get("positives") or {}, sb.get("positives") or {}
        for label in [*pa, *(lab for lab in pb if lab not in pa)]:
            if pa.get(label) != pb.get(label):
                lines.append(f"{where}: positives of '{label}' {_diff(pa.get(label), pb.get(label))}")
        for key, name in _HASHES:
            if sa.get(key) != sb.get(key):
                lines.append(f"{where}: {name} differs ({str(sa.get(key))[:12]}... vs {str(sb.get(key))[:12]}...)")
    return lines
