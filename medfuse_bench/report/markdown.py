"""Markdown rendering of result tables, with estimates in the paper's notation."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from medfuse_bench.evaluation.metrics import few_valid

MISSING = "—"

#: Explains the ``[k/N]`` that :func:`format_estimate` adds to an interval resting on few resamples.
FEW_VALID_NOTE = ("[k/N] after an interval: it rests on the k of the N bootstrap resamples in which the metric is "
                  "defined (the others draw no positive or no negative for the label, or for every label of a macro "
                  "average); shown where k is below 95% of N.")

_FEW_VALID = re.compile(r"\[\d+/\d+\]$")


def format_estimate(
    value: float | None,
    low: float | None,
    high: float | None,
    digits: int = 3,
    valid: int | None = None,
    resamples: int | None = None,
) -> str:
    """``0.865 (0.846, 0.884)``; the value alone without an interval; ``—`` when there is no value; ``[k/N]`` after
    an interval that rests on fewer than 95% of the ``resamples`` (``valid`` = k).

    >>> format_estimate(0.8654, 0.8461, 0.884), format_estimate(0.5, None, None), format_estimate(None, None, None)
    ('0.865 (0.846, 0.884)', '0.500', '—')
    >>> format_estimate(0.25, 0.1, 0.6, valid=612, resamples=1000), format_estimate(0.25, 0.1, 0.6, valid=990, resamples=1000)
    ('0.250 (0.100, 0.600) [612/1000]', '0.250 (0.100, 0.600)')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return f"{value:.{digits}f}"
    text = f"{value:.{digits}f} ({low:.{digits}f}, {high:.{digits}f})"
    if few_valid(valid, resamples):
        text += f" [{valid}/{resamples}]"
    return text


def few_valid_note(rows: Sequence[Sequence[str]]) -> str:
    """:data:`FEW_VALID_NOTE` as a paragraph when any cell ends with ``[k/N]`` (with bold marks stripped), else ''.

    >>> few_valid_note([["a", "0.5 (0.4, 0.6)"]]), few_valid_note([["**0.5 (0.4, 0.6) [9/10]**"]]).split()[0]
    ('', '[k/N]')
    """
    if any(_FEW_VALID.search(str(c).strip("*")) for row in rows for c in row):
        return "\n\n" + FEW_VALID_NOTE
    return ""


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
