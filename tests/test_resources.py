"""The package's transcribed facts agree with the original release's files (skipped when ../shared is absent)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from medfuse_bench import resources

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/reference is absent")


def test_feature_layout_has_76_columns_with_continuous_positions_of_the_original():
    names = resources.feature_names()
    assert len(names) == 76
    continuous = [i for i, n in enumerate(names[:59]) if "->" not in n]
    # ORIGINAL_CODE_NOTES §2.1: continuous (normalised) columns are 2, 3 and 49-58.
    assert continuous == [2, 3, *range(49, 59)]
    assert names[59:] == [f"mask->{v}" for v in resources.variable_names()]


def test_phenotype_labels_are_25_in_sorted_order():
    labels = resources.phenotype_labels()
    assert len(labels) == 25 and labels == sorted(labels)
    groups = [p["group"] for p in resources.phenotypes()]
    assert groups.count("acute") + groups.count("mixed") + groups.count("chronic") == 25


def test_task_labels_reject_unknown_task():
    assert resources.task_labels("in-hospital-mortality") == ["mortality"]
    with pytest.raises(KeyError, match="unknown task"):
        resources.task_labels("decompensation")


@needs_reference
def test_discretizer_facts_match_reference():
    ref = json.loads((REFERENCE / "discretizer_config.json").read_text())
    assert resources.variable_names() == ref["id_to_channel"]
    for v in resources.variables():
        assert v["categorical"] == ref["is_categorical_channel"][v["name"]]
        assert v["normal_value"] == ref["normal_values"][v["name"]]
        if v["categorical"]:
            assert v["possible_values"] == ref["possible_values"][v["name"]]
    info = json.loads((REFERENCE / "channel_info.json").read_text())
    for v in resources.variables():
        if v["categorical"]:
            assert v["ordinal"] == info[v["name"]]["values"]


@needs_reference
def test_ranges_match_reference():
    rows = {r["LEVEL2"]: r for r in csv.DictReader((REFERENCE / "variable_ranges.csv").open())}
    for v in resources.variables():
        row = rows["Heart rate" if v["name"] == "Heart Rate" else v["name"]]
        got = v["ranges"]
        assert got == {
            "outlier_low": float(row["OUTLIER LOW"]),
            "valid_low": float(row["VALID LOW"]),
            "impute": float(row["IMPUTE"]),
            "valid_high": float(row["VALID HIGH"]),
            "outlier_high": float(row["OUTLIER HIGH"]),
        }


@needs_reference
def test_itemids_match_ready_rows_of_reference_map():
    expected = {}
    for r in csv.DictReader((REFERENCE / "itemid_to_variable_map.csv").open()):
        if r["LEVEL2"] and r["STATUS"] == "ready" and r["COUNT"] and float(r["COUNT"]) > 0:
            expected[int(r["ITEMID"])] = r["LEVEL2"]
    assert len(expected) == 114
    got = {iid: name for iid, (name, _) in resources.itemid_map(source=None).items()}
    assert got == expected


@needs_reference
def test_phenotypes_match_reference_definitions():
    defs = yaml.safe_load((REFERENCE / "hcup_ccs_2015_definitions.yaml").read_text())
    bench = {k: v for k, v in defs.items() if v["use_in_benchmark"]}
    assert resources.phenotype_labels() == sorted(bench)
    for p in resources.phenotypes():
        assert p["ccs_id"] == bench[p["name"]]["id"]
        assert p["yaml_type"] == bench[p["name"]]["type"]
