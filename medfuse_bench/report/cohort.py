"""The counts of the paper's Figure 1: stays per task and split in (EHR + CXR)_PARTIAL (every stay) and
(EHR + CXR)_PAIRED (stays with a linked X-ray), the in-hospital deaths among them, and the CXR_UNI images per split.

Stay counts come from the task tables the models were trained on (``tasks/{task}/samples.parquet``); CXR_UNI
images from ``tasks/summary.json`` when it is there.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from medfuse_bench.report.markdown import MISSING, markdown_table
from medfuse_bench.report.provenance import dataset_sizes
from medfuse_bench.resources import SPLITS

MORTALITY_TASK, MORTALITY_LABEL = "in-hospital-mortality", "mortality"


def cohort_counts(samples: pl.DataFrame, task: str) -> pl.DataFrame:
    """Stays per split (``partial``, ``paired``, ``paired_fraction``) and, for in-hospital mortality, the deaths
    among them (``partial_positives``, ``paired_positives``; null for other tasks).

    >>> s = pl.DataFrame({"split": ["train", "train", "test"], "cxr_dicom_id": ["a", None, "b"], "mortality": [1, 1, 0]})
    >>> cohort_counts(s, "in-hospital-mortality").select("split", "partial", "paired", "partial_positives",
    ...                                                  "paired_positives").rows()
    [('train', 2, 1, 2, 1), ('val', 0, 0, 0, 0), ('test', 1, 1, 0, 0)]
    """
    sizes = dataset_sizes(samples, task)
    if task != MORTALITY_TASK or MORTALITY_LABEL not in samples.columns:
        return sizes.with_columns(pl.lit(None, pl.Int64).alias("partial_positives"),
                                  pl.lit(None, pl.Int64).alias("paired_positives"))
    label = pl.col(MORTALITY_LABEL).cast(pl.Int64)
    positives = samples.group_by("split").agg(
        label.sum().alias("partial_positives"),
        label.filter(pl.col("cxr_dicom_id").is_not_null()).sum().alias("paired_positives"),
    )
    return (sizes.join(positives, on="split", how="left", maintain_order="left")
            .with_columns(pl.col("partial_positives", "paired_positives").fill_null(0).cast(pl.Int64)))


def cxr_uni_images(summary: dict[str, Any] | None) -> dict[str, int] | None:
    """CXR_UNI images per split from summary.json, None when it does not hold them.

    >>> cxr_uni_images({"cxr_uni": {"images": {"train": 5, "val": 1, "test": 2}}})
    {'train': 5, 'val': 1, 'test': 2}
    """
    images = ((summary or {}).get("cxr_uni") or {}).get("images")
    if not isinstance(images, dict):
        return None
    return {s: int(images.get(s, 0)) for s in SPLITS}


def _with_share(count: int | None, total: int | None) -> str:
    if count is None:
        return MISSING
    return f"{count} ({count / total:.1%})" if total else str(count)


def cohort_markdown(frame: pl.DataFrame, images: dict[str, int] | None, summary_md: str | None = None) -> str:
    """Figure 1's counts as a table; deaths are shown for in-hospital mortality with their share of the stays."""
    rows = []
    for r in frame.iter_rows(named=True):
        share = MISSING if r["paired_fraction"] is None else f"{r['paired_fraction']:.3f}"
        rows.append([r["task"], r["split"], str(r["partial"]), str(r["paired"]), share,
                     _with_share(r["partial_positives"], r["partial"]), _with_share(r["paired_positives"], r["paired"])])
    headers = ["Task", "Split", "PARTIAL stays", "PAIRED stays", "Paired share", "Deaths in PARTIAL", "Deaths in PAIRED"]
    text = ("Figure 1 of the paper: stays per task and split from `tasks/{task}/samples.parquet`; PARTIAL = every "
            "stay, PAIRED = the stays with a linked X-ray. Deaths (in-hospital mortality positives) with their share "
            "of the stays; phenotyping's 25 labels are in Table 4.")
    if summary_md:
        text += f" The full ETL summary is `{summary_md}`."
    text += "\n\n" + markdown_table(headers, rows, numeric_from=2)
    if images:
        text += ("\n\nCXR_UNI images (CheXpert pretraining, shared by the tasks): "
                 + ", ".join(f"{s} {images[s]}" for s in SPLITS) + ".")
    return text + "\n"


def exclusions_markdown(summary: dict | None, summary_md: str | None = None) -> str:
    """The ETL's rows dropped or changed (``exclusions`` of tasks/summary.json), most rows first; empty without
    records."""
    records = (summary or {}).get("exclusions") or []
    if not records:
        return ""
    rows = [[r.get("stage"), r.get("file"), r.get("column"), r.get("reason"), r.get("action"), f"{r.get('rows') or 0:,}"]
            for r in sorted(records, key=lambda r: -(r.get("rows") or 0))]
    where = f" (with an example of each in `{summary_md}`)" if summary_md else ""
    text = ("### Rows the ETL dropped or changed\n\nEvery row a stage dropped or changed for a reason, counted per "
            f"file, column and reason{where}.\n\n")
    return text + markdown_table(["Stage", "File", "Column", "Reason", "Action", "Rows"], rows, numeric_from=5) + "\n"
