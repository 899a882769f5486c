"""Markdown rendering of result tables, with estimates in the paper's notation."""

from __future__ import annotations

import math
from collections.abc import Sequence

MISSING = "—"


def format_estimate(value: float | None, low: float | None, high: float | None, digits: int = 3) -> str:
    """``0.865 (0.846, 0.884)``; the value alone without an interval; ``—`` when there is no value.

    >>> format_estimate(0.8654, 0.8461, 0.884), format_estimate(0.5, None, None), format_estimate(None, None, None)
    ('0.865 (0.846, 0.884)', '0.500', '—')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ({low:.{digits}f}, {high:.{digits}f})"


def bold(text: str) -> str:
    return f"**{text}**" if text != MISSING else text


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int | None = None) -> str:
    """A GitHub-flavoured Markdown table; columns from ``numeric_from`` on are right-aligned.

    >>> print(markdown_table(["Model", "AUROC"], [["LSTM", "0.800"]], numeric_from=1))
    | Model | AUROC |
    |:--|--:|
    | LSTM | 0.800 |
    """
    def cell(text: object) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    align = [":--" if numeric_from is None or i < numeric_from else "--:" for i in range(len(headers))]
    lines = [
        "| " + " | ".join(cell(h) for h in headers) + " |",
        "|" + "|".join(align) + "|",
        *("| " + " | ".join(cell(c) for c in row) + " |" for row in rows),
    ]
    return "\n".join(lines)
