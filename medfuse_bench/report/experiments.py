"""Experiment and test-set names shared with training (docs: EXPERIMENTS contract), with their display names
and the rows of the paper's tables (section 5 and appendix A)."""

from __future__ import annotations

from dataclasses import dataclass

#: Paper order of the task columns in the tables.
TASK_ORDER: tuple[str, ...] = ("phenotyping", "in-hospital-mortality")
TASK_TITLES: dict[str, str] = {"phenotyping": "Phenotyping", "in-hospital-mortality": "In-hospital mortality"}

TEST_SETS: tuple[str, ...] = ("paired", "partial", "paired_nocxr")

#: Stand-in experiment of the paper's Unified row; report.policy.resolve_spec sets the model (switch unified_row).
UNIFIED_ROW = "unified"

DISPLAY_NAMES: dict[str, str] = {
    "ehr-paired": "LSTM (EHR_PAIRED)",
    "ehr-partial": "LSTM (EHR_PARTIAL)",
    "ehr-partial-available": "LSTM (EHR_PARTIAL), window by storetime",
    "cxr-paired": "ResNet-34 (CXR_PAIRED)",
    "early-paired": "Early (EHR + CXR)_PAIRED",
    "early-partial": "Early (EHR + CXR)_PARTIAL",
    "early-partial-zeros": "Early (EHR + CXR)_PARTIAL, zeros",
    "joint-paired": "Joint (EHR + CXR)_PAIRED",
    "joint-partial": "Joint (EHR + CXR)_PARTIAL",
    "joint-partial-zeros": "Joint (EHR + CXR)_PARTIAL, zeros",
    "mmtm": "MMTM",
    "daft": "DAFT",
    "multihead-partial": "Multi-head (EHR + CXR)_PARTIAL",
    "medfuse-ri": "MedFuse (RI)",
    "medfuse-pt": "MedFuse (PT)",
    "medfuse-optimal": "MedFuse (OPTIMAL)",
    "ensemble": "Ensemble (MedFuse + LSTM)",
}


def display_name(experiment: str) -> str:
    """Readable name of an experiment; ``medfuse-p{N}`` sweeps and unknown names pass through.

    >>> display_name("medfuse-optimal"), display_name("medfuse-p20")
    ('MedFuse (OPTIMAL)', 'MedFuse (20% uni-modal)')
    """
    if experiment.startswith("medfuse-p") and experiment[len("medfuse-p") :].isdigit():
        return f"MedFuse ({experiment[len('medfuse-p'):]}% uni-modal)"
    return DISPLAY_NAMES.get(experiment, experiment)


@dataclass(frozen=True)
class Row:
    """One row of a results table: descriptive cells, then the prediction file that fills the metric cells."""

    cells: tuple[str, ...]
    experiment: str
    test_set: str


@dataclass(frozen=True)
class TableSpec:
    key: str
    title: str
    headers: tuple[str, ...]
    rows: tuple[Row, ...]
    bold_best: bool = True


TABLE1 = TableSpec(
    key="table1",
    title="Table 1: uni-modal vs multi-modal (MedFuse (OPTIMAL))",
    headers=("Model", "Training set", "Test set"),
    rows=(
        Row(("LSTM", "EHR_PAIRED", "EHR_PAIRED"), "ehr-paired", "paired"),
        Row(("LSTM", "EHR_PARTIAL", "EHR_PAIRED"), "ehr-partial", "paired"),
        Row(("MedFuse", "(EHR + CXR)_PARTIAL", "EHR_PAIRED"), "medfuse-optimal", "paired_nocxr"),
        Row(("MedFuse", "(EHR + CXR)_PARTIAL", "(EHR + CXR)_PAIRED"), "medfuse-optimal", "paired"),
        Row(("LSTM", "EHR_PARTIAL", "EHR_PARTIAL"), "ehr-partial", "partial"),
        Row(("MedFuse", "(EHR + CXR)_PARTIAL", "(EHR + CXR)_PARTIAL"), "medfuse-optimal", "partial"),
    ),
    bold_best=False,
)

TABLE2 = TableSpec(
    key="table2",
    title="Table 2: the (EHR + CXR)_PAIRED test set",
    headers=("Method",),
    rows=tuple(
        Row(("Unified" if e == UNIFIED_ROW else DISPLAY_NAMES[e],), e, "paired")
        for e in (
            "early-paired",
            "early-partial",
            "joint-paired",
            "joint-partial",
            "mmtm",
            "daft",
            UNIFIED_ROW,
            "medfuse-ri",
            "medfuse-pt",
            "medfuse-optimal",
        )
    ),
)

TABLE3 = TableSpec(
    key="table3",
    title="Table 3: the (EHR + CXR)_PARTIAL test set",
    headers=("Method",),
    rows=(
        Row(("Early",), "early-partial", "partial"),
        Row(("Joint",), "joint-partial", "partial"),
        Row(("MedFuse",), "medfuse-pt", "partial"),
        Row(("MedFuse (OPTIMAL)",), "medfuse-optimal", "partial"),
    ),
)

TABLE_A2 = TableSpec(
    key="table_a2",
    title="Table A2: missing X-ray as zeros vs a learnable vector (partial test set)",
    headers=("Method", "Missing vector"),
    rows=(
        Row(("Joint", "Zeros"), "joint-partial-zeros", "partial"),
        Row(("Joint", "Learnable"), "joint-partial", "partial"),
        Row(("Early", "Zeros"), "early-partial-zeros", "partial"),
        Row(("Early", "Learnable"), "early-partial", "partial"),
    ),
    bold_best=False,
)

TABLE_A3 = TableSpec(
    key="table_a3",
    title="Table A3: MedFuse vs an ensemble (partial test set)",
    headers=("Method",),
    rows=(
        Row(("Ensemble",), "ensemble", "partial"),
        Row(("MedFuse (OPTIMAL)",), "medfuse-optimal", "partial"),
    ),
)

#: Table 4, Table 5 and Figure 4 compare these two on the paired test set.
UNIMODAL_REFERENCE = "ehr-paired"
MULTIMODAL_MODEL = "medfuse-optimal"

#: Figure A2 (X-rays dropped from the paired test set): the models that predict without an X-ray.
DROP_CXR_MODELS: tuple[str, ...] = (
    "medfuse-optimal",
    "medfuse-pt",
    "medfuse-ri",
    "multihead-partial",
    "early-partial",
    "early-partial-zeros",
    "joint-partial",
    "joint-partial-zeros",
)

#: Figure A3 (uni-modal stays added to the paired test set): MedFuse and the EHR-only reference.
UNIMODAL_TEST_MODELS: tuple[str, ...] = ("medfuse-optimal", "ehr-partial")

#: Table 5 age groups: [low, high) in years; None = open.
AGE_GROUPS: tuple[tuple[str, float | None, float | None], ...] = (
    ("18-40", 18, 40),
    ("40-60", 40, 60),
    ("60-80", 60, 80),
    ("> 80", 80, None),
)
