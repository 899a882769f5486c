"""Count what each ETL fidelity switch changes on one ingested dataset, between the ``original`` and ``corrected``
presets and for each switch on its own.

Used to fill the tables of docs/fidelity.md::

    python -m benchmarks.fidelity_report --raw-dir results/etl/raw [--workdir results] [--definitions YAML] \
        [--out counts.json]

Both presets run on the same raw tables; each count is the number of rows (events, diagnoses) or stays that one
defect changes, measured on its own where the defect can be isolated. ``switch_alone`` counts, per switch of the
cohort and variables stages, what changes when only that switch is set to the original's value over the corrected
preset. With ``--workdir`` (a pipeline or ``python -m benchmarks.etl`` workdir that ran the corrected preset) it
also counts the CXR_UNI split sizes under both ``cxr_uni_split`` values, the in-hospital-mortality samples under both
``death_before_prediction`` values and the effect of ``normalizer: original_mimic3`` on the train split's
standardised values.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import polars as pl

from medfuse_bench.etl import phenotypes as P
from medfuse_bench.etl import presets
from medfuse_bench.etl import task_tables as TT
from medfuse_bench.etl import variable_extraction as VX
from medfuse_bench.etl import variable_linking as VL
from medfuse_bench.etl import variable_rules as VR
from medfuse_bench.etl.cohort import build_cohort
from medfuse_bench.etl.cxr import build_cxr_uni
from medfuse_bench.etl.normaliser import original_state
from medfuse_bench.fidelity import SWITCHES, FidelityPolicy

ORIGINAL, CORRECTED = FidelityPolicy.preset("original"), FidelityPolicy.preset("corrected")


def alone(name: str) -> FidelityPolicy:
    """The corrected preset with one switch set to the original's value."""
    return CORRECTED.replace(**{name: getattr(ORIGINAL, name)})


def cohort_differences(icu: pl.DataFrame, adm: pl.DataFrame, pat: pl.DataFrame) -> tuple[dict[str, int], pl.DataFrame]:
    """Stays gained or lost through the age rule, ages and mortality labels that differ on the common stays."""
    orig, _ = build_cohort(icu, adm, pat, policy=ORIGINAL)
    corr, _ = build_cohort(icu, adm, pat, policy=CORRECTED)
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
    out["switch_alone"] = {}
    for switch in (s.name for s in SWITCHES if s.stage == "cohort"):
        one, _ = build_cohort(icu, adm, pat, policy=alone(switch))
        joined = one.join(corr, on="stay_id", suffix="_c")
        out["switch_alone"][switch] = {
            "stays_only_switched": one.join(corr, on="stay_id", how="anti").height,
            "stays_only_corrected": corr.join(one, on="stay_id", how="anti").height,
            # los_hours to a microsecond: icustays.los x 24 and outtime - intime differ in float rounding alone
            "common_stays_differing": joined.filter(
                pl.col("age").ne_missing(pl.col("age_c")) | pl.col("mortality").ne_missing(pl.col("mortality_c"))
                | ((pl.col("los_hours") - pl.col("los_hours_c")).abs() > 1e-6 / 3600)
            ).height,
        }
    return out, corr


def cleaning_differences(events: pl.DataFrame) -> dict[str, int]:
    """Raw rows whose cleaned value differs between the modes, per rule."""
    x = VR._number(pl.col("value"))
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
    mapped = VR.clean_values(VR.map_items(events.lazy(), CORRECTED.capillary_refill), CORRECTED).collect()
    out = {}
    for table in ("labevents", "chartevents"):
        part = mapped.filter(pl.col("table") == table).with_row_index("row").lazy()
        orig = VL.assign_stays(part, stays.lazy(), ORIGINAL).select("row", "stay_id").collect()
        corr = VL.assign_stays(part, stays.lazy(), CORRECTED).select("row", "stay_id").collect()
        out[f"{table}_rows_original"] = orig.height
        out[f"{table}_rows_corrected"] = corr.height
        out[f"{table}_only_original"] = orig.join(corr, on=["row", "stay_id"], how="anti").height
        out[f"{table}_only_corrected"] = corr.join(orig, on=["row", "stay_id"], how="anti").height
    return out


def dedup_differences(events: pl.DataFrame, stays: pl.DataFrame) -> dict[str, int]:
    """(stay, charttime, variable) groups with several rows, and those whose kept value differs between the rules."""
    lf = VL.assign_stays(
        VR.clean_values(VR.map_items(events.lazy(), CORRECTED.capillary_refill), CORRECTED, sort_keys=True).filter(
            pl.col("value").is_not_null() | pl.col("value_text").is_not_null()
        ),
        stays.lazy(),
        CORRECTED,
    )
    groups = lf.group_by(VL.EVENT_KEYS).len().filter(pl.col("len") > 1).collect()
    orig = VL.keep_one_per_time(lf, ORIGINAL.same_time_values).collect()
    corr = VL.keep_one_per_time(lf, CORRECTED.same_time_values).collect()
    both = orig.join(corr, on=VL.EVENT_KEYS, suffix="_c")
    differs = both.filter(
        pl.col("value").ne_missing(pl.col("value_c")) | pl.col("value_text").ne_missing(pl.col("value_text_c"))
    )
    return {"groups_with_duplicates": groups.height, "groups_where_kept_value_differs": differs.height}


def event_stage_counts(events: pl.DataFrame, stays: pl.DataFrame) -> dict[str, Any]:
    """The variables stage's own counts under each preset (outliers keep for original, range for corrected), per
    variable the output rows only one preset has or whose value differs (both with outliers kept), and per switch
    the output rows that change when only that switch takes the original's value."""
    orig_out, orig = VX.extract_events(events, stays, policy=ORIGINAL)
    corr_out, corr = VX.extract_events(events, stays, policy=CORRECTED)
    kept_out, _ = VX.extract_events(events, stays, policy=CORRECTED.replace(outliers="keep"))
    alone_counts = {}
    for switch in (s.name for s in SWITCHES if s.stage == "variables"):
        one, _ = VX.extract_events(events, stays, policy=alone(switch))
        alone_counts[switch] = {variable: n for variable, n in _output_differences(one, corr_out).items()
                                if any(n.values())}
    return {"original": orig, "corrected": corr,
            "outputs_differ_outliers_kept": _output_differences(orig_out, kept_out), "switch_alone": alone_counts}


def _output_differences(first: pl.DataFrame, second: pl.DataFrame) -> dict[str, dict[str, int]]:
    """Per variable, output rows only ``first`` has (only_original), only ``second`` has (only_corrected), and rows
    of both whose value differs."""
    keys = ["stay_id", "hours", "variable"]
    both = first.join(second, on=keys, how="full", coalesce=True, suffix="_c")
    differs = both.group_by("variable").agg(
        only_original=pl.col("value_c").is_null() & pl.col("value_text_c").is_null(),
        only_corrected=pl.col("value").is_null() & pl.col("value_text").is_null(),
        value_differs=((pl.col("value") - pl.col("value_c")).abs() > 1e-9)
        | pl.col("value_text").ne(pl.col("value_text_c")),
    ).with_columns(pl.col("only_original", "only_corrected", "value_differs").list.eval(pl.element().sum()).list.first())
    return {row["variable"]: {k: int(v or 0) for k, v in row.items() if k != "variable"}
            for row in differs.sort("variable").iter_rows(named=True)}


def phenotype_differences(stays: pl.DataFrame, diagnoses: pl.DataFrame, dictionary: pl.DataFrame,
                          definitions_path: str | None) -> dict[str, Any]:
    """Label cells that differ between GEM mode and definitions mode, and the original's dictionary join."""
    gem_corr, stats_corr = P.build_phenotypes(stays, diagnoses, policy=CORRECTED, dictionary=dictionary)
    gem_orig, stats_orig = P.build_phenotypes(stays, diagnoses, policy=ORIGINAL, dictionary=dictionary)
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
        yaml_orig, stats_yaml = P.build_phenotypes(stays, diagnoses, policy=ORIGINAL, dictionary=dictionary,
                                                   definitions=definitions)
        out["definitions_original_vs_gem_corrected"] = differing(yaml_orig, gem_corr)
        out["definitions_unmapped_by_version"] = {k: v["rows_unmapped"]
                                                  for k, v in stats_yaml["by_icd_version"].items()}
        out["definitions_prevalence"] = stats_yaml["prevalence"]
    return out


def cxr_uni_differences(raw: Path, splits: pl.DataFrame) -> dict[str, Any]:
    """CXR_UNI images per split under each ``cxr_uni_split`` value, and the images whose split differs."""
    tables = [pl.read_parquet(raw / f"{t}.parquet") for t in ("cxr_metadata", "cxr_chexpert", "cxr_split")]
    out: dict[str, Any] = {}
    frames = {}
    for value in ("official", "all_train"):
        frames[value] = build_cxr_uni(*tables, splits, cxr_uni_split=value).select("dicom_id", "subject_id", "split")
        out[value] = dict(sorted(frames[value].group_by("split").len().iter_rows()))
    both = frames["official"].join(frames["all_train"], on="dicom_id", suffix="_all")
    moves = both.filter(pl.col("split") != pl.col("split_all")).group_by("split", "split_all").len()
    out["moved"] = {f"{a} -> {b}": n for a, b, n in moves.sort("split", "split_all").iter_rows()}
    ehr = splits.filter(pl.col("ehr")) if "ehr" in splits.columns else splits
    out["images_of_ehr_patients"] = frames["official"].join(ehr.select("subject_id"), on="subject_id",
                                                            how="semi").height
    return out


def death_differences(workdir: Path, raw: Path) -> dict[str, Any]:
    """In-hospital-mortality samples (preset ``medfuse``) under each ``death_before_prediction`` value, and the
    positives whose death is at or before the prediction time: at it, or before it."""
    stays = pl.read_parquet(workdir / "etl" / "stays.parquet")
    first = TT.first_event_hours(pl.scan_parquet(workdir / "etl" / "events.parquet"))
    splits = pl.read_parquet(workdir / "etl" / "splits.parquet")
    metadata = pl.read_parquet(raw / "cxr_metadata.parquet")
    definition = presets.task_definition("in-hospital-mortality", "medfuse")
    out: dict[str, Any] = {}
    for value in ("kept", "excluded"):
        policy = CORRECTED.replace(death_before_prediction=value)
        samples = TT.build_task_samples(stays, None, splits, metadata, definition, first_events=first, policy=policy)
        out[value] = {"samples": samples.height, "positives": int(samples["mortality"].sum())}
    kept = TT.build_task_samples(stays, None, splits, metadata, definition, first_events=first,
                                 policy=CORRECTED.replace(death_before_prediction="kept"))
    timed = kept.select("stay_id", "period_length").join(stays.select("stay_id", "intime", *TT.OUTCOME_COLUMNS),
                                                        on="stay_id").with_columns(
        outcome=TT.outcome_time(), prediction=TT.after_intime("period_length"))
    out["death_at_prediction_time"] = timed.filter(pl.col("outcome") == pl.col("prediction")).height
    out["death_before_prediction_time"] = timed.filter(pl.col("outcome") < pl.col("prediction")).height
    return out


def normalizer_differences(normalizer_path: Path) -> dict[str, Any]:
    """Per continuous channel, the mean and std that the train split's values take when standardised with the
    original's MIMIC-III state instead of the train split's own statistics (which give 0 and 1): (m - M) / S and
    s / S, with m, s the train split's statistics from a ``normalizer: train_split`` run's normalizer.json."""
    fitted = json.loads(normalizer_path.read_text())
    if fitted.get("normalizer", "train_split") != "train_split":
        raise ValueError(f"{normalizer_path} is not from a normalizer: train_split run")
    means, stds, used = original_state(fitted["timestep_hours"])
    features = fitted["features"]
    out: dict[str, Any] = {"timestep_hours": fitted["timestep_hours"], "state_timestep_hours": used}
    for name in fitted["normalized_features"]:
        i = features.index(name)
        out[name] = {"mean": round((fitted["means"][i] - means[i]) / stds[i], 3),
                     "std": round(fitted["stds"][i] / stds[i], 4)}
    return out


def fidelity_counts(raw_dir: str | Path, definitions_path: str | None = None,
                    workdir: str | Path | None = None) -> dict[str, Any]:
    raw = Path(raw_dir)
    read = lambda name: pl.read_parquet(raw / f"{name}.parquet")  # noqa: E731
    cohort, stays = cohort_differences(read("icustays"), read("admissions"), read("patients"))
    events = pl.concat([read("chartevents"), read("labevents")], how="vertical_relaxed").select(
        list(VX.RAW_EVENT_SCHEMA)
    )
    events = events.join(stays.select("subject_id"), on="subject_id", how="semi")
    out = {
        "cohort": cohort,
        "cleaning": cleaning_differences(events.join(stays.select("stay_id"), on="stay_id", how="semi")),
        "assignment": assignment_differences(events, stays),
        "dedup": dedup_differences(events, stays),
        "variables_stage": event_stage_counts(events, stays),
        "phenotypes": phenotype_differences(stays, read("diagnoses_icd"), read("d_icd_diagnoses"), definitions_path),
    }
    if workdir is not None:
        workdir = Path(workdir)
        out["cxr_uni"] = cxr_uni_differences(raw, pl.read_parquet(workdir / "etl" / "splits.parquet"))
        out["death_before_prediction"] = death_differences(workdir, raw)
        out["normalizer"] = {path.parent.name: normalizer_differences(path)
                             for path in sorted((workdir / "tasks").glob("*/normalizer.json"))}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fidelity_report",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw-dir", required=True, help="folder of raw Parquet tables written by `ingest`")
    parser.add_argument("--definitions", default=None, help="phenotype definitions YAML to compare with GEM mode")
    parser.add_argument("--workdir", default=None,
                        help="workdir of a corrected run (etl/stays.parquet, events.parquet, splits.parquet, "
                             "tasks/*/normalizer.json): also count the CXR_UNI split, death_before_prediction and "
                             "normaliser switches")
    parser.add_argument("--out", default=None, help="write the counts here (default: print them)")
    args = parser.parse_args(argv)
    counts = fidelity_counts(args.raw_dir, args.definitions, args.workdir)
    text = json.dumps(counts, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
