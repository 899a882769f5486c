"""Phenotype stage: GEM + CCS mapping, definitions-YAML mode, the original's code-only dictionary join, stats of
unmapped codes, label matrix; compared with the original release's YAML files when ../shared is present."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal

from medfuse_bench import resources
from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl import phenotype_codes as PC
from medfuse_bench.etl import phenotypes as P
from medfuse_bench.fidelity import FidelityPolicy

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/reference is absent")

LABELS = resources.phenotype_labels()
HTN, HTN_COMPLICATED, SEPSIS = "Essential hypertension", LABELS[16], "Septicemia (except in labor)"

STAYS = pl.DataFrame({"stay_id": [100, 200, 300], "hadm_id": [10, 20, 30]})
ORIGINAL = FidelityPolicy.preset("original")


def diagnoses(*rows: tuple) -> pl.DataFrame:
    """(hadm_id, icd_code, icd_version)."""
    return pl.DataFrame(list(rows), schema={"hadm_id": pl.Int64, "icd_code": pl.String, "icd_version": pl.Int64},
                        orient="row")


def matrix(*rows: tuple) -> pl.DataFrame:
    """(stay_id, set of positive labels) -> the expected label matrix."""
    return pl.DataFrame(
        [(stay, *[int(name in pos) for name in LABELS]) for stay, pos in rows],
        schema={"stay_id": pl.Int64, **{name: pl.Int8 for name in LABELS}},
        orient="row",
    )


def test_gem_mode_maps_icd9_directly_and_icd10_by_majority_of_gem_targets():
    diag = diagnoses(
        (10, "4019", 9),  # essential hypertension
        (10, "4010", 9),  # malignant hypertension: CCS 99
        (20, "I10", 10),  # GEM -> 4010 (99), 4011 (98), 4019 (98): majority 98
        (20, "A41.9", 10),  # dotted form accepted; GEM -> 0389 + 99591 (combination): septicemia
        (20, "Z9999", 10),  # not in the GEM: unmapped
        (20, "V1201", 9),  # CCS 1 (tuberculosis), not a benchmark group
    )
    labels, stats = P.build_phenotypes(STAYS, diag)
    assert_frame_equal(labels, matrix((100, {HTN, HTN_COMPLICATED}), (200, {HTN, SEPSIS}), (300, set())))
    assert stats["by_icd_version"]["9"] | {"most_frequent_unmapped": None} == {
        "rows": 3, "distinct_codes": 3, "rows_unmapped": 0, "distinct_codes_unmapped": 0, "rows_benchmark": 2,
        "most_frequent_unmapped": None,
    }
    assert stats["by_icd_version"]["10"]["rows_unmapped"] == 1
    assert stats["by_icd_version"]["10"]["most_frequent_unmapped"] == {"Z9999": 1}
    assert stats["stays_with_any_label"] == 2 and stats["prevalence"][HTN] == 2
    (unmapped,) = [r for r in stats["exclusions"] if r["reason"].startswith("ICD-10")]
    assert (unmapped["file"], unmapped["column"], unmapped["rows"], unmapped["example"]) == (
        "diagnoses_icd", "icd_code", 1, "'Z9999'")


@pytest.mark.parametrize("fidelity", ["original", "corrected"])
def test_icd_version_other_than_9_or_10_is_an_error_naming_column_and_values(fidelity):
    diag = diagnoses((10, "4019", 9), (20, "BA00", 11), (30, "5A11", 11), (30, "I10", None))
    with pytest.raises(MedfuseError, match=r"diagnoses_icd: column 'icd_version' holds 11 \(2 rows\), empty "
                                           r"\(1 rows\), e\.g\. in the row with hadm_id 20"):
        P.build_phenotypes(STAYS, diag, policy=FidelityPolicy.preset(fidelity))


def test_icd10_combination_codes_keep_groups_reached_in_every_scenario():
    gem = pl.DataFrame(
        {"icd10": ["X1"] * 4, "icd9": ["0389", "99591", "0389", "4019"], "scenario": [1, 1, 2, 2],
         "choice_list": [1, 2, 1, 2]}
    )
    out = PC.icd10_ccs(pl.DataFrame({"icd_code": ["X1"]}), gem)
    assert out.rows() == [("X1", 2)]  # septicemia in both scenarios; hypertension in one only


def test_icd10_alternatives_keep_the_majority_group_or_every_tied_group():
    gem = PC.packaged_gem().filter(pl.col("icd10").is_in(["I10", "N171"]))
    out = PC.icd10_ccs(pl.DataFrame({"icd_code": ["I10", "N171"]}), gem).sort("icd_code", "ccs_id")
    assert out.rows() == [("I10", 98), ("N171", 156), ("N171", 157)]


def test_inner_on_code_joins_the_dictionary_on_code_only():
    diag = diagnoses((10, "4019", 9), (20, "5845", 9), (20, "I10", 10))
    dictionary = pl.DataFrame({"icd_code": ["4019", "I10", "I10"], "icd_version": [9, 10, 9]})  # 5845 missing
    corrected_policy = FidelityPolicy.preset("corrected")
    alone = corrected_policy.replace(icd_dictionary_join="inner_on_code")
    original, stats = P.build_phenotypes(STAYS, diag, policy=alone, dictionary=dictionary)
    corrected, corrected_stats = P.build_phenotypes(STAYS, diag, policy=corrected_policy, dictionary=dictionary)
    assert_frame_equal(P.build_phenotypes(STAYS, diag, policy=ORIGINAL, dictionary=dictionary)[0], original)
    assert "rows_lost_in_dictionary_join" not in corrected_stats
    assert stats["fidelity"] == {"preset": "corrected", "icd_dictionary_join": "inner_on_code"}
    renal = "Acute and unspecified renal failure"
    assert original.filter(pl.col("stay_id") == 200)[renal].item() == 0
    assert corrected.filter(pl.col("stay_id") == 200)[renal].item() == 1
    assert stats["rows_lost_in_dictionary_join"] == 1
    assert stats["rows_doubled_in_dictionary_join"] == 1
    counted = {r["reason"].split(" (")[0].split(":")[0]: (r["action"], r["rows"]) for r in stats["exclusions"]}
    assert counted["code missing from d_icd_diagnoses"] == ("dropped", 1)
    assert counted["code present in both ICD versions of d_icd_diagnoses"] == ("changed", 1)


def _definitions(tmp_path: Path, names: list[str] | None = None, extra: dict | None = None) -> Path:
    names = LABELS if names is None else names
    groups = {name: {"codes": [], "id": i, "type": "acute", "use_in_benchmark": True} for i, name in enumerate(names)}
    groups[HTN]["codes"] = ["4019", "I10"] if HTN in groups else []
    if SEPSIS in groups:
        groups[SEPSIS]["codes"] = ["0389", "0389"]  # duplicates within a group are allowed
    groups["Tuberculosis"] = {"codes": ["V1201"], "id": 1, "type": "unknown", "use_in_benchmark": False}
    groups.update(extra or {})
    path = tmp_path / "definitions.yaml"
    path.write_text(yaml.safe_dump(groups))
    return path


def test_definitions_mode_matches_codes_alone(tmp_path: Path):
    definitions = PC.load_definitions(_definitions(tmp_path))
    # An ICD-10 diagnosis whose code string equals an ICD-9 code of the YAML still matches: the YAML has no versions.
    diag = diagnoses((10, "4019", 10), (20, "0389", 9), (20, "V1201", 9), (30, "I129", 10))
    labels, stats = P.build_phenotypes(STAYS, diag, policy=ORIGINAL, definitions=definitions)
    assert_frame_equal(labels, matrix((100, {HTN}), (200, {SEPSIS}), (300, set())))
    assert stats["mode"] == "definitions"
    assert stats["by_icd_version"]["9"]["rows_unmapped"] == 0  # V1201 is in a (non-benchmark) group
    assert stats["by_icd_version"]["10"]["most_frequent_unmapped"] == {"I129": 1}


def test_definitions_with_unknown_names_are_rejected(tmp_path: Path):
    names = [*LABELS[:-1], "Shock (typo)"]
    with pytest.raises(MedfuseError, match=r"unknown names: \['Shock \(typo\)'\]; missing names: \['Shock'\]"):
        PC.load_definitions(_definitions(tmp_path, names))


def test_definitions_with_a_code_in_two_groups_are_rejected(tmp_path: Path):
    extra = {"Other": {"codes": ["4019"], "id": 999, "type": "unknown", "use_in_benchmark": False}}
    with pytest.raises(MedfuseError, match="code '4019' is listed in more than one group"):
        PC.load_definitions(_definitions(tmp_path, extra=extra))


def test_definitions_missing_keys_are_rejected(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"Shock": {"codes": ["785"]}}))
    with pytest.raises(MedfuseError, match="group 'Shock' needs the keys"):
        PC.load_definitions(path)


def test_read_gem_file_skips_no_map_entries(tmp_path: Path):
    path = tmp_path / "2018_I10gem.txt"
    path.write_text("A000     0010      00000\nI10      4010      10000\nI10      4019      10000\n"
                    "R402130  NoDx      11000\nA021     0031      10111\n")
    gem = PC.read_gem_file(path)
    assert gem.rows() == [("A000", "0010", 0, 0), ("A021", "0031", 1, 1), ("I10", "4010", 0, 0),
                          ("I10", "4019", 0, 0)]
    (tmp_path / "empty.txt").write_text("not a gem\n")
    with pytest.raises(MedfuseError, match="empty.txt"):
        PC.read_gem_file(tmp_path / "empty.txt")


def test_label_matrix_of_stays_without_diagnoses_is_zero():
    labels, stats = P.build_phenotypes(STAYS, diagnoses())
    assert_frame_equal(labels, matrix((100, set()), (200, set()), (300, set())))
    assert stats["stays_with_diagnoses"] == 0 and stats["by_icd_version"] == {}


# --- the original release's files -------------------------------------------------------------------------------


@needs_reference
def test_original_definitions_file_loads_and_labels_its_own_codes():
    definitions = PC.load_definitions(REFERENCE / "icd_9_10_definitions_2.yaml")
    codes = {name: group["codes"][0] for name, group in definitions.items() if group["use_in_benchmark"]}
    assert set(codes) == set(LABELS)
    stays = pl.DataFrame({"stay_id": range(25), "hadm_id": range(25)})
    diag = diagnoses(*[(i, codes[name], 9) for i, name in enumerate(LABELS)])
    labels, _ = P.build_phenotypes(stays, diag, policy=ORIGINAL, definitions=definitions)
    assert labels.drop("stay_id").to_numpy().tolist() == [[int(i == j) for j in range(25)] for i in range(25)]


@needs_reference
def test_ccs_of_icd9_agrees_with_the_original_hcup_definitions():
    definitions = yaml.safe_load((REFERENCE / "hcup_ccs_2015_definitions.yaml").read_text())
    pairs = pl.DataFrame([(c, g["id"]) for g in definitions.values() for c in g["codes"]],
                         schema={"icd9": pl.String, "id": pl.Int64}, orient="row").unique()
    joined = pairs.join(PC.ccs_of_icd9(pairs["icd9"].to_list()), on="icd9")
    assert joined.height == pairs.height
    assert (joined["id"] == joined["ccs_id"]).all()


@needs_reference
def test_gem_mapping_puts_the_original_yamls_icd10_codes_in_their_groups():
    definitions = yaml.safe_load((REFERENCE / "icd_9_10_definitions_2.yaml").read_text())
    gem = PC.packaged_gem()
    icd10 = set(gem["icd10"].to_list())
    pairs = pl.DataFrame(
        [(c, name) for name, g in definitions.items() if g["use_in_benchmark"] for c in g["codes"] if c in icd10],
        schema={"icd_code": pl.String, "expected": pl.String}, orient="row",
    ).unique()
    mapped = PC.map_codes_with_gem(pairs.select("icd_code").unique().with_columns(icd_version=pl.lit(10)), gem)
    agree = pairs.join(mapped, on="icd_code", how="left").group_by("icd_code", "expected").agg(
        ok=(pl.col("phenotype") == pl.col("expected")).any()
    )
    assert agree.height > 500
    assert agree["ok"].mean() > 0.98  # all but a few codes that the forward GEM put elsewhere


# --- command ----------------------------------------------------------------------------------------------------


def _raw(tmp_path: Path) -> tuple[Path, Path]:
    raw = tmp_path / "raw"
    raw.mkdir()
    diagnoses((10, "4019", 9), (20, "I10", 10)).write_parquet(raw / "diagnoses_icd.parquet")
    pl.DataFrame({"icd_code": ["4019", "I10"], "icd_version": [9, 10]}).write_parquet(raw / "d_icd_diagnoses.parquet")
    STAYS.write_parquet(tmp_path / "stays.parquet")
    return raw, tmp_path / "stays.parquet"


def test_phenotypes_command(tmp_path: Path, cli_process):
    raw, stays = _raw(tmp_path)
    out, stats = tmp_path / "phenotypes.parquet", tmp_path / "mapping.json"
    result = cli_process("phenotypes", "--raw-dir", raw, "--stays", stays, "--out", out, "--stats", stats)
    assert result.returncode == 0, result.stderr
    assert_frame_equal(pl.read_parquet(out), matrix((100, {HTN}), (200, {HTN}), (300, set())))
    info = json.loads(stats.read_text())
    assert info["mode"] == "gem" and info["diagnoses_rows_total"] == 2


def test_phenotypes_command_rejects_unknown_group_names(tmp_path: Path, cli_process):
    raw, stays = _raw(tmp_path)
    definitions = _definitions(tmp_path, [*LABELS[:-1], "Shocks"])
    out = tmp_path / "phenotypes.parquet"
    result = cli_process("phenotypes", "--raw-dir", raw, "--stays", stays, "--out", out, "--stats", tmp_path / "m.json",
                         "--definitions", definitions)
    assert result.returncode == 2
    assert "definitions.yaml" in result.stderr and "Shocks" in result.stderr
    assert not out.exists() and not (tmp_path / "m.json").exists()


def test_docstring_examples():
    assert doctest.testmod(P).failed == 0
