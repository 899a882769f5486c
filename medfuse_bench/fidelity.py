"""The fidelity policy: one named switch per way this pipeline may differ from the original MedFuse code.

``fidelity: original`` and ``fidelity: corrected`` are two presets of :class:`FidelityPolicy`; any switch can be
set on its own (config key ``fidelity_switches``, CLI ``--switch NAME=VALUE``). The policy is built once from the
config and passed down; no other module compares preset names. docs/fidelity.md lists every switch with the
original behaviour, the default one, why, and its measured effect.

>>> p = FidelityPolicy.preset("original")
>>> p.age, p.mmtm_step
('anchor_age', 'three_passes')
>>> FidelityPolicy.preset("corrected").replace(mmtm_step="three_passes").deviations()
{'mmtm_step': 'three_passes'}
>>> FidelityPolicy.preset("original").stage_args("cohort")
'--fidelity original'
>>> FidelityPolicy.from_switches("corrected", {"age": "anchor_age"}).stage_args("cohort")
'--fidelity corrected --switch age=anchor_age'
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from medfuse_bench.errors import MedfuseError

PRESETS: tuple[str, ...] = ("original", "corrected")


@dataclass(frozen=True)
class Switch:
    """One difference from the original code: its values under each preset and the stage that reads it."""

    name: str
    stage: str
    original: str
    corrected: str
    #: Values besides the two presets' that the switch accepts.
    extra: tuple[str, ...] = ()
    summary: str = ""

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.original, self.corrected, *self.extra)))


#: Every switch, in the order of docs/fidelity.md. ``stage`` is the subcommand (and rule) that reads it.
SWITCHES: tuple[Switch, ...] = (
    # cohort
    Switch("age", "cohort", "anchor_age", "age_at_stay", summary="patient age: anchor_age, or the age at the stay"),
    Switch("mortality", "cohort", "dod_or_deathtime", "deathtime_or_flag",
           summary="in-hospital death: dod or deathtime in the admission, or deathtime / hospital_expire_flag"),
    Switch("los_hours", "cohort", "icustays_los", "intime_to_outtime",
           summary="length of stay: icustays.los x 24, or outtime - intime"),
    # variables
    Switch("lab_link", "variables", "hadm_id", "stay_window",
           summary="labs joined to a stay by hadm_id (whole admission), or by subject and time in the stay"),
    Switch("chart_link", "variables", "time_window", "stay_id",
           summary="chart events given to any stay of the patient whose window holds them, or by stay_id"),
    Switch("same_time_values", "variables", "last_by_value", "latest_storetime",
           summary="one value per (stay, time, variable): the last after sorting by value, or the latest storetime"),
    Switch("fio2", "variables", "always_divide", "percent_only", summary="FiO2 / 100 always, or only above 1"),
    Switch("temperature", "variables", "by_value", "by_item",
           summary="Fahrenheit detected by value >= 79, or by the Fahrenheit item id"),
    Switch("height_inches", "variables", "kept", "converted", summary="height item 226707 (inches) kept or in cm"),
    Switch("outliers", "variables", "keep", "range",
           summary="outlier ranges never applied, or outliers dropped and invalid values clipped"),
    Switch("capillary_refill", "variables", "carevue_only", "with_mimic_iv",
           summary="capillary refill from CareVue item ids only (never observed in MIMIC-IV), or MIMIC-IV's too"),
    Switch("gcs_total", "variables", "carevue_only", "derived",
           summary="GCS total from CareVue item 198 only, or derived from eye + motor + verbal"),
    # phenotypes
    Switch("icd_dictionary_join", "phenotypes", "inner_on_code", "none",
           summary="diagnoses inner-joined to d_icd_diagnoses on icd_code alone, or not joined"),
    # cxr_uni
    Switch("cxr_uni_split", "cxr_uni", "all_train", "official",
           summary="CXR_UNI: every image in train, then EHR val/test patients moved out; or the official split"),
    # task_tables
    Switch("death_before_prediction", "task_tables", "kept", "excluded",
           summary="in-hospital-mortality stays whose death is at or before the prediction time (intime + 48 h): "
                   "kept, or left out"),
    # timeseries
    Switch("normalizer", "timeseries", "original_mimic3", "train_split",
           summary="input normaliser: the original's fixed MIMIC-III state, or fitted on the task's train split"),
    Switch("window_by", "timeseries", "charttime", "charttime", extra=("storetime",),
           summary="time-series window: events charted inside it (the paper), or stored (available) inside it"),
    # train
    Switch("adam_betas", "train", "beta2_0.9", "beta2_0.999", summary="Adam betas (0.9, 0.9) or (0.9, 0.999)"),
    Switch("unimodal_sampling", "train", "with_replacement", "without_replacement",
           summary="uni-modal stays of a partial set drawn with replacement every epoch, or a fixed sample"),
    Switch("partial_validation", "train", "paired_only", "all_stays",
           summary="partial-trained models validate on the paired val stays, or on every val stay"),
    Switch("train_crop", "train", "center", "random", summary="crop after augmentation: centre or random"),
    Switch("frozen_encoders", "train", "train_mode", "eval_mode",
           summary="frozen encoders' BatchNorm and dropout run in training mode, or stay in eval mode"),
    Switch("mmtm_step", "train", "three_passes", "summed_loss",
           summary="MMTM: three forward passes and optimiser steps per batch, or one step on the summed loss"),
    Switch("mmtm_daft_scheduler", "train", "never_stepped", "stepped",
           summary="MMTM / DAFT learning-rate scheduler created but never stepped, or stepped"),
    Switch("padded_time_mean", "train", "padded", "valid_steps",
           summary="MMTM / DAFT EHR time mean over the padded length, or over each stay's steps"),
    Switch("cxr_paired_start", "train", "scratch", "cxr_pretrain",
           summary="CXR encoder of early fusion (cxr-paired) from scratch, or from the CXR_UNI pretraining"),
    Switch("cxr_pretrain_protocol", "train", "fixed_lr_100_epochs", "lr_search",
           summary="CXR_UNI pretraining: 100 epochs at lr 1e-4, or the experiments' epochs and learning-rate search"),
    Switch("cxr_pretrain_init", "train", "imagenet", "random",
           summary="CXR_UNI pretraining starts from ImageNet weights (a local file), or from random weights"),
    Switch("table_a2_protocol", "train", "fixed_lr_pretrained", "lr_search",
           summary="Table A2 rows: lr 1e-4 and encoders from EHR_PARTIAL pretraining, or the standard protocol"),
    Switch("token_early_stopping", "train", "none", "patience",
           summary="early / joint fusion with a missing-modality vector: no early stopping, or patience"),
    Switch("sweep_lr", "train", "medfuse_pt_best", "own_search",
           summary="uni-modal sweep points use MedFuse (PT)'s selected learning rate, or their own search"),
    # select / report
    Switch("optimal_fraction", "select", "sweep_best", "sweep_best", extra=("paper_fixed",),
           summary="MedFuse (OPTIMAL): the sweep point with the best validation AUROC, or the paper's 0.1 / 0.2"),
    Switch("unified_row", "report", "joint_on_paired", "joint_on_paired", extra=("multi_head",),
           summary="the Unified row: the original's joint network evaluated on paired data, or the multi-head model"),
)

_BY_NAME: dict[str, Switch] = {s.name: s for s in SWITCHES}
STAGES: tuple[str, ...] = tuple(dict.fromkeys(s.stage for s in SWITCHES))


@dataclass(frozen=True)
class FidelityPolicy:
    """Resolved switches of one run. Build with :meth:`preset`, :meth:`from_switches` or :meth:`from_config`."""

    preset_name: str
    age: str
    mortality: str
    los_hours: str
    lab_link: str
    chart_link: str
    same_time_values: str
    fio2: str
    temperature: str
    height_inches: str
    outliers: str
    capillary_refill: str
    gcs_total: str
    icd_dictionary_join: str
    cxr_uni_split: str
    death_before_prediction: str
    normalizer: str
    window_by: str
    adam_betas: str
    unimodal_sampling: str
    partial_validation: str
    train_crop: str
    frozen_encoders: str
    mmtm_step: str
    mmtm_daft_scheduler: str
    padded_time_mean: str
    cxr_paired_start: str
    cxr_pretrain_protocol: str
    cxr_pretrain_init: str
    table_a2_protocol: str
    token_early_stopping: str
    sweep_lr: str
    optimal_fraction: str
    unified_row: str

    def __post_init__(self) -> None:
        if self.preset_name not in PRESETS:
            raise MedfuseError(f"fidelity must be one of {', '.join(PRESETS)}, got '{self.preset_name}'")
        for switch in SWITCHES:
            value = getattr(self, switch.name)
            if value not in switch.values:
                raise MedfuseError(
                    f"fidelity switch '{switch.name}' must be one of {', '.join(switch.values)}, got '{value}'"
                )

    @classmethod
    def preset(cls, name: str) -> FidelityPolicy:
        """The ``original`` or ``corrected`` preset."""
        if name not in PRESETS:
            raise MedfuseError(f"fidelity must be one of {', '.join(PRESETS)}, got '{name}'")
        return cls(preset_name=name, **{s.name: getattr(s, name) for s in SWITCHES})

    @classmethod
    def from_switches(cls, preset: str, switches: Mapping[str, str] | None = None) -> FidelityPolicy:
        """A preset with some switches set on their own; an unknown switch is an error naming it."""
        base = cls.preset(preset)
        return base.replace(**dict(switches or {}))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FidelityPolicy:
        """From a validated config: ``fidelity`` (the preset) and ``fidelity_switches``."""
        return cls.from_switches(config["fidelity"], config.get("fidelity_switches") or {})

    def replace(self, **switches: str) -> FidelityPolicy:
        unknown = sorted(set(switches) - set(_BY_NAME))
        if unknown:
            raise MedfuseError(f"unknown fidelity switch '{unknown[0]}'; known switches: {', '.join(_BY_NAME)}")
        return dataclasses.replace(self, **switches)

    def is_original(self, name: str) -> bool:
        """Whether switch ``name`` has the original code's behaviour."""
        return getattr(self, name) == _BY_NAME[name].original

    def deviations(self) -> dict[str, str]:
        """Switches whose value differs from the named preset's."""
        return {s.name: getattr(self, s.name) for s in SWITCHES
                if getattr(self, s.name) != getattr(s, self.preset_name)}

    def as_dict(self) -> dict[str, str]:
        return {"preset": self.preset_name, **{s.name: getattr(self, s.name) for s in SWITCHES}}

    def stage_args(self, *stages: str) -> str:
        """CLI arguments that carry the policy to one stage, or to a step that reads the switches of several: the
        preset, and those stages' deviating switches.

        Rules pass only their own stage's switches, so changing a training switch reruns training, not the ETL.
        """
        for stage in stages:
            if stage not in STAGES:
                raise MedfuseError(f"no fidelity switches belong to stage '{stage}'; stages: {', '.join(STAGES)}")
        mine = {s.name for s in SWITCHES if s.stage in stages}
        args = [f"--fidelity {self.preset_name}"]
        args += [f"--switch {k}={v}" for k, v in self.deviations().items() if k in mine]
        return " ".join(args)

    def summary_line(self) -> str:
        """One line for reports: the preset and every switch set differently from it."""
        dev = self.deviations()
        if not dev:
            return f"fidelity policy: {self.preset_name} (no switch changed)"
        changed = ", ".join(f"{k}={v}" for k, v in dev.items())
        return f"fidelity policy: {self.preset_name}, with {changed}"


def switch(name: str) -> Switch:
    """The switch called ``name``."""
    try:
        return _BY_NAME[name]
    except KeyError as exc:
        raise MedfuseError(f"unknown fidelity switch '{name}'; known switches: {', '.join(_BY_NAME)}") from exc


def add_policy_arguments(parser: argparse.ArgumentParser, default_preset: str = "corrected") -> None:
    """``--fidelity PRESET`` and repeatable ``--switch NAME=VALUE`` on a subcommand."""
    parser.add_argument("--fidelity", choices=PRESETS, default=default_preset,
                        help=f"fidelity preset: original or corrected (docs/fidelity.md; default: {default_preset})")
    parser.add_argument("--switch", action="append", default=[], metavar="NAME=VALUE",
                        help="set one fidelity switch on its own, e.g. --switch mmtm_step=three_passes (repeatable)")


def parse_switches(items: Iterable[str]) -> dict[str, str]:
    """``["a=b", ...]`` -> ``{"a": "b"}``; a malformed item is an error naming it."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise MedfuseError(f"--switch expects NAME=VALUE, got '{item}'")
        switch(name)
        out[name] = value
    return out


def policy_from_args(args: argparse.Namespace) -> FidelityPolicy:
    """The policy of a subcommand's parsed ``--fidelity`` / ``--switch`` arguments."""
    return FidelityPolicy.from_switches(args.fidelity, parse_switches(getattr(args, "switch", []) or []))
