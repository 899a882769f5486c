"""The leaderboard as one self-contained HTML page, ``{workdir}/leaderboard/index.html``.

Everything the page needs is in the file (CSS, the sorting script, the intervals drawn as inline SVG), so it opens
offline and can be mailed or archived as is; the only addresses in it are the links to the entries' code. Each task
and test set has one table per cohort receipt, as in the Markdown leaderboards: entries measured on different test
data are never ranked together. A click on a column header sorts that table.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import polars as pl

from medfuse_bench import __version__
from medfuse_bench.evaluation.metrics import METRICS
from medfuse_bench.io import write_text
from medfuse_bench.report.board import NO_RECEIPT, receipt_title
from medfuse_bench.report.experiments import TASK_TITLES
from medfuse_bench.report.markdown import format_estimate

#: Width in pixels of the interval drawings; the axis runs from 0 to 1.
BAR_WIDTH = 160

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 75em; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.92em; }
th, td { padding: 0.3em 0.6em; border-bottom: 1px solid #e4e4e4; text-align: left; vertical-align: middle; }
th { cursor: pointer; user-select: none; background: #f4f4f4; white-space: nowrap; }
th.sorted-asc::after { content: " \\25B2"; } th.sorted-desc::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.baseline td { color: #555; } tr.leaky td:nth-child(2) { color: #a40000; }
.warning { background: #fff4e5; border-left: 4px solid #e08a00; padding: 0.5em 1em; }
.receipt code, .note code { font-size: 0.95em; } .note { color: #555; font-size: 0.9em; }
svg.ci line.axis { stroke: #ccc; } svg.ci line.chance { stroke: #bbb; stroke-dasharray: 2 2; }
svg.ci line.interval { stroke: #2b6cb0; stroke-width: 3; } svg.ci circle { fill: #1a365d; }
nav a { margin-right: 1em; }
"""

#: Sorts a table by the clicked column: numbers by data-value, text alphabetically (data-value, else the cell's
#: text); a second click reverses.
_SCRIPT = """
function key(cell) { return cell.dataset.value === undefined ? cell.textContent : cell.dataset.value; }
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var numeric = th.dataset.type === "number";
      var ascending = !th.classList.contains("sorted-asc");
      rows.sort(function (a, b) {
        var x = key(a.cells[column]), y = key(b.cells[column]);
        if (numeric) {
          x = x === "" ? NaN : parseFloat(x); y = y === "" ? NaN : parseFloat(y);
          if (isNaN(x) || isNaN(y)) { return isNaN(x) - isNaN(y); }
          return ascending ? x - y : y - x;
        }
        return ascending ? x.localeCompare(y) : y.localeCompare(x);
      });
      rows.forEach(function (row) { body.appendChild(row); });
      table.querySelectorAll("th").forEach(function (other) { other.classList.remove("sorted-asc", "sorted-desc"); });
      th.classList.add(ascending ? "sorted-asc" : "sorted-desc");
    });
  });
});
"""

_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Rank", "number"), ("Model", "text"), ("Authors", "text"),
    ("AUROC", "number"), ("AUROC 95% CI", "number"), ("AUPRC", "number"), ("AUPRC 95% CI", "number"),
    ("n", "number"), ("Code", "text"),
)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(float(value))


def interval_svg(value: float | None, low: float | None, high: float | None, chance: float | None = None) -> str:
    """The estimate as a dot and its 95% interval as a bar on a 0-1 axis (inline SVG, no external reference).

    >>> svg = interval_svg(0.8, 0.7, 0.9, chance=0.5)
    >>> 'x1="112.0" x2="144.0"' in svg and 'cx="128.0"' in svg and "http" not in svg
    True
    >>> interval_svg(None, None, None)
    ''
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""

    def x(v: float) -> str:
        return f"{min(max(v, 0.0), 1.0) * BAR_WIDTH:.1f}"

    parts = [f'<svg class="ci" width="{BAR_WIDTH}" height="14" viewBox="0 0 {BAR_WIDTH} 14" role="img">',
             f'<title>{_e(format_estimate(value, low, high))}</title>',
             f'<line class="axis" x1="0" x2="{BAR_WIDTH}" y1="7" y2="7"/>']
    if chance is not None:
        parts.append(f'<line class="chance" x1="{x(chance)}" x2="{x(chance)}" y1="1" y2="13"/>')
    if low is not None and high is not None and not (math.isnan(low) or math.isnan(high)):
        parts.append(f'<line class="interval" x1="{x(low)}" x2="{x(high)}" y1="7" y2="7"/>')
    parts.append(f'<circle cx="{x(value)}" cy="7" r="3"/></svg>')
    return "".join(parts)


def _row(r: dict[str, Any]) -> str:
    model = r["model"] + (" (baseline)" if r["baseline"] else "") + (" (leaky)" if r["leaky"] else "")
    code = r["code_url"] or ""
    link = f'<a href="{_e(code)}">code</a>' if code.startswith(("https://", "http://")) else _e(code)
    cells = [f'<td class="num" data-value="{_number(r["rank"])}">{_e(r["rank"])}</td>',
             f'<td data-value="{_e(model)}">{_e(model)}</td>',
             f'<td data-value="{_e(r["authors"])}">{_e(r["authors"])}</td>']
    for m in METRICS:
        est = format_estimate(r[m], r[f"{m}_ci_low"], r[f"{m}_ci_high"], valid=r[f"{m}_valid_resamples"],
                              resamples=r["bootstrap"])
        width = "" if r[f"{m}_ci_low"] is None or r[f"{m}_ci_high"] is None else r[f"{m}_ci_high"] - r[f"{m}_ci_low"]
        chance = 0.5 if m == "auroc" else None
        cells += [f'<td class="num" data-value="{_number(r[m])}">{_e(est)}</td>',
                  f'<td data-value="{_number(width) if width != "" else ""}">'
                  f'{interval_svg(r[m], r[f"{m}_ci_low"], r[f"{m}_ci_high"], chance)}</td>']
    cells += [f'<td class="num" data-value="{_number(r["n"])}">{_e(r["n"])}</td>',
              f"<td>{link}</td>"]
    classes = " ".join(c for c, on in (("baseline", r["baseline"]), ("leaky", r["leaky"])) if on)
    return f'<tr class="{classes}">' + "".join(cells) + "</tr>"


def receipt_section(key: str, frame: pl.DataFrame, local: str | None) -> str:
    """One receipt's ranked entries as a sortable table."""
    receipt = "" if key == NO_RECEIPT else key
    title = html.escape(receipt_title(key, local)).replace("`", "")
    head = "".join(f'<th data-type="{kind}" scope="col">{_e(name)}</th>' for name, kind in _COLUMNS)
    rows = "\n".join(_row(r) for r in frame.iter_rows(named=True))
    warning = ('<p class="warning"><strong>Leaky task data.</strong> Entries marked (leaky) were scored on a leaky '
               "task definition (cohort preset <code>medfuse-2022</code>); do not compare them with leak-free "
               "results.</p>" if frame.height and frame["leaky"].any() else "")
    described = frame["data"].drop_nulls().unique(maintain_order=True).to_list() if frame.height else []
    data = f'<p class="note">Data: {_e("; ".join(described))}.</p>' if described else ""
    return (f'<section class="receipt" data-receipt="{_e(receipt)}">\n<h3 title="{_e(receipt)}">{title}</h3>\n'
            f"{data}{warning}\n"
            f'<table class="sortable" data-receipt="{_e(receipt)}">\n<thead><tr>{head}</tr></thead>\n'
            f"<tbody>\n{rows}\n</tbody>\n</table>\n</section>")


def split_boards(frame: pl.DataFrame) -> list[tuple[str, pl.DataFrame]]:
    """The stacked leaderboard frame (column ``receipt_sha256``) back into one frame per receipt, in its order."""
    if frame.height == 0 or "receipt_sha256" not in frame.columns:
        return []
    keys = frame["receipt_sha256"].fill_null(NO_RECEIPT).unique(maintain_order=True).to_list()
    return [(k, frame.filter(pl.col("receipt_sha256").fill_null(NO_RECEIPT) == k)) for k in keys]


def leaderboard_page(boards: list[tuple[str, str, pl.DataFrame]], local: str | None) -> str:
    """The page for (task, test set, stacked leaderboard frame) triples."""
    nav, sections = [], []
    for task, test_set, frame in boards:
        anchor = f"{task}-{test_set}"
        title = f"{TASK_TITLES.get(task, task)}, {test_set} test set"
        nav.append(f'<a href="#{_e(anchor)}">{_e(title)}</a>')
        parts = [receipt_section(k, f, local) for k, f in split_boards(frame)] or ["<p>No entries.</p>"]
        sections.append(f'<section class="board" id="{_e(anchor)}">\n<h2>{_e(title)}</h2>\n' + "\n".join(parts)
                        + "\n</section>")
    intro = ("Ranked by AUROC (macro over labels for phenotyping), then AUPRC, with 95% bootstrap percentile "
             "intervals (bars on a 0 to 1 axis; the dashed line marks an AUROC of 0.5). Entries scored against "
             "different cohort receipts were measured on different test data, so each receipt has a table of its "
             "own; <code>medfuse-bench receipt --compare A B</code> says how two receipts differ. Click a column "
             "header to sort.")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>medfuse-bench leaderboard</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>medfuse-bench leaderboard</h1>\n<p class=\"note\">{intro}</p>\n"
        f"<nav>{''.join(nav)}</nav>\n" + "\n".join(sections)
        + f"\n<p class=\"note\">Written by medfuse-bench {_e(__version__)}.</p>\n<script>{_SCRIPT}</script>\n"
        "</body>\n</html>\n"
    )


def write_leaderboard_page(boards: list[tuple[str, str, pl.DataFrame]], local: str | None, path: Path) -> Path:
    write_text(leaderboard_page(boards, local), path)
    return path
