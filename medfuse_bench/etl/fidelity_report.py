"""Count what each difference between the ``original`` and ``corrected`` modes changes on one ingested dataset.

Used to fill the tables of docs/fidelity.md::

    python -m medfuse_bench.etl.fidelity_report --raw-dir results/etl/raw [--definitions YAML] [--out counts.json]

Both modes run on the same raw tables; each count is the number of rows (events, diagnoses) or stays that one
defect changes, measured on its own where the defect can be isolated.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import polars as pl

from medfuse_bench.etl import phenotypes as P
from medfuse_bench.etl import variables as V
from medfuse_bench.etl.cohort import build_cohort


def cohort_differences(icu: pl.DataFrame, adm: pl.DataFrame, pat: pl.DataFrame) -> tuple[dict[str, int], pl.DataFrame]:
    """Stays gained or lost through the age rule, ages and mortality labels that differ on the common stays."""
    orig, _ = build_cohort(icu, adm, pat, fidelity="original")
    corr, _ = build_cohort(icu, adm, pat, fidelity="corrected")
    both = orig.join(corr, on="stay_id", suffix="_c")
    out = {
        "stays_original": orig.height,
        "stays_corrected": corr.height,
        "stays_only_original": orig.join(corr, on="stay_id", how="anti").height,
        "stays_only_corrected": corr.join(orig, on="stay_id", how="anti").height,
        "age_differs": both.filter(pl.col("age") != pl.col("age_c")).height,
        "mortality_1_original_0_corrected": both.filter((pl.col("mortality") > pl.col("mortality_c"))).height,
        "mortality_0_original_1_corrected": both.filter((pl.col("mortality") < pl.col("mortality_c"))).height,
        "mortality_original": int(orig["mortality"].sum()),
        "mortality_corrected": int(corr["mortality"].sum()),
    }
    return out, corr


def cleaning_differences(events: pl.DataFrame) -> dict[str, int]:
    """Raw rows whose cleaned value differs between the modes, per rule."""
    x = V._number(pl.col("value"))
    item = pl.col("itemid")
    temperature = item.is_in([223761, 223762])
    return events.select(
        fio2_rows=(item == 223835).sum(),
        fio2_fraction_rows_divided_again=((item == 223835) & (x <= 1.0)).sum(),
        temperature_rows=temperature.sum(),
        temperature_rule_disagrees=(
            temperature & (((item == 223761) & (x < 79)) | ((item != 223761) & (x >= 79)))
        ).sum(),
        height_inch_rows=(item == 226707).sum(),
        weight_lbs_rows_converted_in_both=(item == 226531).sum(),
        capillary_refill_rows=item.is_in([223951, 224308]).sum(),
    ).to_dicts()[0]


def assignment_differences(events: pl.DataFrame, stays: pl.DataFrame) -> dict[str, int]:
    """Lab rows placed in a stay by one mode's rule and not the other's (on the corrected cohort), and chart rows
    the original's time-window rule copies into a second stay."""
    mapped = V.clean_values(V.map_items(events.lazy(), "corrected"), "corrected").collect()
    out = {}
    for table in ("labevents", "chartevents"):
        part = mapped.filter(pl.col("table") == table).with_row_index("row").lazy()
        orig = V.assign_stays(part, stays.lazy(), "original").select("row", "stay_id").collect()
        corr = V.assign_stays(part, stays.lazy(), "corrected").select("row", "stay_id").collect()
        out[f"{table}_rows_original"] = orig.height
        out[f"{table}_rows_corrected"] = corr.height
        out[f"{table}_only_original"] = orig.join(corr, on=["row", "stay_id"], how="anti").height
        out[f"{table}_only_corrected"] = corr.join(orig, on=["row", "stay_id"], how="anti").height
    return out


def dedup_differences(events: pl.DataFrame, stays: pl.DataFrame) -> dict[str, int]:
    """(stay, charttime, variable) groups with several rows, and those whose kept value differs between the rules."""
    lf = V.assign_stays(
        V.clean_values(V.map_items(events.lazy(), "corrected"), "corrected", sort_keys=True).filter(
            pl.col("value").is_not_null() | pl.col("value_text").is_not_null()
        ),
        stays.lazy(),
        "corrected",
    )
    groups = lf.group_by(V.EVENT_KEYS).len().filter(pl.col("len") > 1).collect()
    orig = V.keep_one_per_time(lf, "original").collect()
    corr = V.keep_one_per_time(lf, "corrected").collect()
    both = orig.join(corr, on=V.EVENT_KEYS, suffix="_c")
    differs = both.filter(
        pl.col("value").ne_missing(pl.col("value_c")) | pl.col("value_text").ne_missing(pl.col("value_text_c"))
    )
    return {"groups_with_duplicates": groups.height, "groups_where_kept_value_differs": differs.height}


def event_stage_counts(events: pl.DataFrame, stays: pl.DataFrame) -> dict[str, Any]:
    """The variables stage's own counts in each mode (outliers keep for original, range for corrected), and per
    variable the output rows only one mode has or whose value differs (both with outliers kept)."""
    orig_out, orig = V.extract_events(events, stays, fidelity="original")
    _, corr = V.extract_events(events, stays, fidelity="corrected")
    kept_out, _ = V.extract_events(events, stays, fidelity="corrected", outliers="keep")
    keys = ["stay_id", "hours", "variable"]
    both = orig_out.join(kept_out, on=keys, how="full", coalesce=True, suffix="_c")
    differs = both.group_by("variable").agg(
        only_original=pl.col("value_c").is_null() & pl.col("value_text_c").is_null(),
        only_corrected=pl.col("value").is_null() & pl.col("value_text").is_null(),
        value_differs=((pl.col("value") - pl.col("value_c")).abs() > 1e-9)
        | pl.col("value_text").ne(pl.col("value_text_c")),
    ).with_columns(pl.col("only_original", "only_corrected", "value_differs").list.eval(pl.element().sum()).list.first())
    by_variable = {row["variable"]: {k: int(v or 0) for k, v in row.items() if k != "variable"}
                   for row in differs.sort("variable").iter_rows(named=True)}
    return {"original": orig, "corrected": corr, "outputs_differ_outliers_kept": by_variable}


def phenotype_differences(stays: pl.DataFrame, diagnoses: pl.DataFrame, dictionary: pl.DataFrame,
                          definitions_path: str | None) -> dict[str, Any]:
    """Label cells that differ between GEM mode and definitions mode, and the original's dictionary join."""
    gem_corr, stats_corr = P.build_phenotypes(stays, diagnoses, fidelity="corrected", dictionary=dictionary)
    gem_orig, stats_orig = P.build_phenotypes(stays, diagnoses, fidelity="original", dictionary=dictionary)
    labels = P.resources.phenotype_labels()

    def differing(a: pl.DataFrame, b: pl.DataFrame) -> dict[str, int]:
        joined = a.join(b, on="stay_id", suffix="_b")
        cells = {n: joined.filter(pl.col(n) != pl.col(f"{n}_b")).height for n in labels}
        rows = joined.filter(pl.any_horizontal([pl.col(n) != pl.col(f"{n}_b") for n in labels])).height
        return {"stays_with_a_differing_label": rows, "label_cells_differing": sum(cells.values()),
                "by_label": {k: v for k, v in cells.items() if v}}

    out: dict[str, Any] = {
        "gem_original_vs_corrected": differing(gem_orig, gem_corr),
        "dictionary_join_rows_lost": stats_orig.get("rows_lost_in_dictionary_join", 0),
        "dictionary_join_rows_doubled": stats_orig.get("rows_doubled_in_dictionary_join", 0),
        "gem_unmapped_by_version": {k: v["rows_unmapped"] for k, v in stats_corr["by_icd_version"].items()},
        "gem_prevalence": stats_corr["prevalence"],
    }
    if definitions_path:
        definitions = P.load_definitions(definitions_path)
        yaml_orig, stats_yaml = P.build_phenotypes(stays, diagnoses, fidelity="original", dictionary=dictionary,
                                                   definitions=definitions)
        out["definitions_original_vs_gem_corrected"] = differing(yaml_orig, gem_corr)
        out["definitions_unmapped_by_version"] = {k: v["rows_unmapped"]
                                                  for k, v in stats_yaml["by_icd_version"].items()}
        out["definitions_prevalence"] = stats_yaml["prevalence"]
    return out


def fidelity_counts(raw_dir: str | Path, definitions_path: str | None = None) -> dict[str, Any]:
    raw = Path(raw_dir)
    read = lambda name: pl.read_parquet(raw / f"{name}.parquet")  # noqa: E731
    cohort, stays = cohort_differences(read("icustays"), read("admissions"), read("patients"))
    events = pl.concat([read("chartevents"), read("labevents")], how="vertical_relaxed").select(
        list(V.RAW_EVENT_SCHEMA)
    )
    events = events.join(stays.select("subject_id"), on="subject_id", how="semi")
    return {
        "cohort": cohort,
        "cleaning": cleaning_differences(events.join(stays.select("stay_id"), on="stay_id", how="semi")),
        "assignment": assignment_differences(events, stays),
        "dedup": dedup_differences(events, stays),
        "variables_stage": event_stage_counts(events, stays),
        "phenotypes": phenotype_differences(stays, read("diagnoses_icd"), read("d_icd_diagnoses"), definitions_path),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw-dir", required=True, help="folder of raw Parquet tables written by `ingest`")
    parser.add_argument("--definitions", default=None, help="phenotype definitions YAML to compare with GEM mode")
    parser.add_argument("--out", default=None, help="write the counts here (default: print them)")
    args = parser.parse_args(argv)
    counts = fidelity_counts(args.raw_dir, args.definitions)
    text = json.dumps(counts, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
