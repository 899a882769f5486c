"""Facts of the benchmark, transcribed from the original release into the package's own files.

``variables.yaml``: the 17 clinical variables (channel order, item ids, range table, categorical values, normal values).
``phenotypes.yaml``: the 25 benchmark phenotypes in label order with their CCS ids and acute/mixed/chronic group.
``original_normalizer.yaml``: the original's fixed input normaliser state (MIMIC-III statistics) per timestep.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

_HERE = Path(__file__).parent

#: libyaml's parser when PyYAML was built with it (about 10x faster than the pure-Python one).
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

TASKS: tuple[str, ...] = ("in-hospital-mortality", "phenotyping")
SPLITS: tuple[str, ...] = ("train", "val", "test")

#: The 14 CheXpert labels of MIMIC-CXR-JPG, in the original's order (= the chexpert table's column order).
CHEXPERT_LABELS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Enlarged Cardiomediastinum",
    "Fracture",
    "Lung Lesion",
    "Lung Opacity",
    "No Finding",
    "Pleural Effusion",
    "Pleural Other",
    "Pneumonia",
    "Pneumothorax",
    "Support Devices",
)


@cache
def _load(name: str) -> dict[str, Any]:
    with (_HERE / name).open() as fh:
        return yaml.load(fh, Loader=YAML_LOADER)


def variables() -> list[dict[str, Any]]:
    """The 17 variables in channel order, each a dict with name, categorical, normal_value, ranges,
    possible_values / ordinal (categorical only) and itemids (itemid, table, label, unit, source)."""
    return _load("variables.yaml")["variables"]


def variable_names() -> list[str]:
    return [v["name"] for v in variables()]


def variable(name: str) -> dict[str, Any]:
    for v in variables():
        if v["name"] == name:
            return v
    raise KeyError(name)


def itemid_map(*, include_corrected: bool = False, source: str | None = "mimic-iv") -> dict[int, tuple[str, str]]:
    """itemid -> (variable, table). ``source`` None keeps CareVue ids too; ``include_corrected`` adds the MIMIC-IV
    item ids that the original map lacks (capillary refill)."""
    out: dict[int, tuple[str, str]] = {}
    for v in variables():
        for item in v["itemids"]:
            if source is None or item["source"] == source:
                out[item["itemid"]] = (v["name"], item["table"])
    if include_corrected:
        for name, items in _load("variables.yaml")["corrected_extra_itemids"].items():
            for item in items:
                out[item["itemid"]] = (name, item["table"])
    return out


def original_normalizer() -> dict[str, dict[str, dict[str, float]]]:
    """The original's fixed normaliser state: timestep in hours as text ("1.0", "0.8") -> continuous channel ->
    ``{"mean": ..., "std": ...}``."""
    return _load("original_normalizer.yaml")["timesteps"]


def phenotypes() -> list[dict[str, Any]]:
    """The 25 benchmark phenotypes in label order: name, ccs_id, yaml_type, group (acute / mixed / chronic)."""
    return _load("phenotypes.yaml")["phenotypes"]


def phenotype_labels() -> list[str]:
    return [p["name"] for p in phenotypes()]


def task_labels(task: str) -> list[str]:
    """Label column names of a task's samples table."""
    if task == "in-hospital-mortality":
        return ["mortality"]
    if task == "phenotyping":
        return phenotype_labels()
    raise KeyError(f"unknown task '{task}'; expected one of {', '.join(TASKS)}")


def feature_names() -> list[str]:
    """The 76 discretised features: values in channel order (one-hot for categorical channels as
    ``<channel>-><value>``), then one mask per channel (``mask-><channel>``)."""
    names: list[str] = []
    for v in variables():
        if v["categorical"]:
            names.extend(f"{v['name']}->{value}" for value in v["possible_values"])
        else:
            names.append(v["name"])
    names.extend(f"mask->{v['name']}" for v in variables())
    return names
