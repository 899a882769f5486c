"""The fidelity policy: presets, switches set on their own, the config schema and the CLI arguments."""

from __future__ import annotations

import argparse

import pytest

from medfuse_bench.config import load_schema
from medfuse_bench.errors import MedfuseError
from medfuse_bench.fidelity import (
    SWITCHES,
    FidelityPolicy,
    add_policy_arguments,
    policy_from_args,
)


def test_every_switch_is_a_policy_field_and_a_schema_key():
    fields = set(FidelityPolicy.__dataclass_fields__) - {"preset_name"}
    assert fields == {s.name for s in SWITCHES}
    schema = load_schema()["properties"]["fidelity_switches"]["properties"]
    assert list(schema) == [s.name for s in SWITCHES]
    for s in SWITCHES:
        assert schema[s.name]["enum"] == list(s.values)
        assert schema[s.name]["description"].strip()


def test_presets_take_each_switch_value_and_report_no_deviation():
    original, corrected = FidelityPolicy.preset("original"), FidelityPolicy.preset("corrected")
    for s in SWITCHES:
        assert getattr(original, s.name) == s.original
        assert getattr(corrected, s.name) == s.corrected
    assert original.deviations() == {} == corrected.deviations()
    assert "no switch changed" in corrected.summary_line()


def test_a_switch_set_on_its_own_is_a_deviation_carried_only_to_its_stage():
    policy = FidelityPolicy.from_config({"fidelity": "corrected", "fidelity_switches": {"mmtm_step": "three_passes"}})
    assert policy.mmtm_step == "three_passes" and policy.is_original("mmtm_step")
    assert policy.deviations() == {"mmtm_step": "three_passes"}
    assert "mmtm_step=three_passes" in policy.summary_line()
    assert policy.stage_args("train") == "--fidelity corrected --switch mmtm_step=three_passes"
    assert policy.stage_args("cohort") == "--fidelity corrected"


@pytest.mark.parametrize(
    ("preset", "switches", "needle"),
    [("paper", {}, "fidelity must be one of"), ("original", {"agee": "x"}, "unknown fidelity switch 'agee'"),
     ("original", {"age": "newborn"}, "switch 'age' must be one of")],
)
def test_bad_policies_name_the_key(preset, switches, needle):
    with pytest.raises(MedfuseError, match=needle):
        FidelityPolicy.from_switches(preset, switches)


def test_cli_arguments_round_trip():
    parser = argparse.ArgumentParser()
    add_policy_arguments(parser)
    args = parser.parse_args(["--fidelity", "original", "--switch", "adam_betas=beta2_0.999"])
    policy = policy_from_args(args)
    assert policy.preset_name == "original" and policy.deviations() == {"adam_betas": "beta2_0.999"}
    with pytest.raises(MedfuseError, match="NAME=VALUE"):
        policy_from_args(parser.parse_args(["--switch", "adam_betas"]))


def test_a_step_reading_several_stages_gets_their_switches_once():
    policy = FidelityPolicy.from_switches("corrected", {"death_before_prediction": "kept", "window_by": "storetime",
                                                        "age": "anchor_age"})
    assert policy.stage_args("task_tables", "timeseries") == \
        "--fidelity corrected --switch death_before_prediction=kept --switch window_by=storetime"
    assert policy.stage_args("task_tables") == "--fidelity corrected --switch death_before_prediction=kept"
    with pytest.raises(MedfuseError, match="stage 'tasks'"):
        policy.stage_args("task_tables", "tasks")
