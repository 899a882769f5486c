"""The training experiments of the benchmark as data: model family, training set, encoder start, test sets.

The names are a contract shared by the workflow, training and reporting (docs/models.md lists them).
Per task there is one row per experiment below; ``medfuse-p{N}`` stands for the uni-modal sweep
(N = integer percent of the EHR-only train stays added to the paired ones). The task-independent
CheXpert pretraining is ``radiology/cxr-pretrain``.

>>> get_experiment("medfuse-p20").uni_fraction
0.2
>>> dependencies("early-paired", "phenotyping")
[('phenotyping', 'ehr-paired'), ('phenotyping', 'cxr-paired')]
>>> dependencies("medfuse-optimal", "in-hospital-mortality")
[('in-hospital-mortality', 'ehr-partial'), ('radiology', 'cxr-pretrain')]
>>> dependencies("cxr-paired", "phenotyping", FidelityPolicy.preset("original"))
[]

Encoder starts and training budgets that the fidelity policy changes are data too: :data:`POLICY_STARTS` and
:func:`training_budget`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from medfuse_bench.errors import MedfuseError
from medfuse_bench.fidelity import FidelityPolicy
from medfuse_bench.resources import CHEXPERT_LABELS, TASKS, task_labels

#: The pseudo-task of CheXpert pretraining on CXR_UNI.
RADIOLOGY = "radiology"
CXR_PRETRAIN = "cxr-pretrain"
#: Placeholder for "the same task as the experiment being trained" in encoder sources.
SAME_TASK = "{task}"

#: Training-set kinds (see medfuse_bench.train.data): which stays, which modalities.
SET_KINDS: tuple[str, ...] = ("ehr_paired", "ehr_partial", "cxr_paired", "fusion_paired", "fusion_partial", "cxr_uni")
TEST_SETS: tuple[str, ...] = ("paired", "partial", "paired_nocxr")

#: MedFuse (OPTIMAL), and MedFuse (PT) whose learning rate the uni-modal sweep may take (fidelity switch sweep_lr).
OPTIMAL = "medfuse-optimal"
MEDFUSE_PT = "medfuse-pt"
#: The multi-head model after Hayat et al. 2021a (family ``unified``); the paper's Unified row is mapped in the report.
MULTIHEAD = "multihead-partial"
#: Subfolder of a task folder with the time series whose window's events were selected by when they were stored
#: (switch window_by: storetime), written by the workflow's rule timeseries_available.
AVAILABLE_TIMESERIES = "available"

# Uni-modal fraction markers of (EHR+CXR)_PARTIAL training sets.
ALL_UNIMODAL = "all"  # every EHR-only train stay
CONFIG_FRACTION = "config"  # train.uni_modal_fraction[task] (MedFuse OPTIMAL)


@dataclass(frozen=True)
class Experiment:
    """One row of the experiment table."""

    name: str
    family: str
    training_set: str
    #: For fusion_partial: "all", "config" or a fraction in [0, 1]; None otherwise.
    uni_fraction: float | str | None = None
    #: Model options; a dict value keyed by task name is resolved per task (DAFT's layer_after).
    options: dict[str, Any] = field(default_factory=dict)
    #: (task, experiment) whose selected model starts the EHR / CXR encoder; None = random init.
    ehr_init: tuple[str, str] | None = None
    cxr_init: tuple[str, str] | None = None
    freeze_encoders: bool = False
    test_sets: tuple[str, ...] = ()
    description: str = ""
    #: Subfolder of the task folder holding the time series it trains and predicts on ("" = the task folder).
    timeseries: str = ""

    @property
    def uses_ehr(self) -> bool:
        return self.training_set not in ("cxr_paired", "cxr_uni")

    @property
    def uses_images(self) -> bool:
        return self.training_set not in ("ehr_paired", "ehr_partial")

    def model_options(self, task: str) -> dict[str, Any]:
        """Options for ``build_model`` with per-task values resolved."""
        return {key: (value[task] if isinstance(value, dict) else value) for key, value in self.options.items()}


_PARTIAL_TESTS = ("paired", "partial", "paired_nocxr")
_EARLY_INIT = {"ehr_init": (SAME_TASK, "ehr-paired"), "cxr_init": (SAME_TASK, "cxr-paired")}
_PT_INIT = {"ehr_init": (SAME_TASK, "ehr-partial"), "cxr_init": (RADIOLOGY, CXR_PRETRAIN)}

_TABLE: tuple[Experiment, ...] = (
    Experiment("ehr-paired", "ehr_lstm", "ehr_paired", test_sets=("paired",),
               description="LSTM on the EHR of paired train stays"),
    Experiment("ehr-partial", "ehr_lstm", "ehr_partial", test_sets=("paired", "partial"),
               description="LSTM on the EHR of every train stay"),
    Experiment("cxr-paired", "cxr_resnet", "cxr_paired", cxr_init=(RADIOLOGY, CXR_PRETRAIN), test_sets=("paired",),
               description="ResNet-34 on the linked X-rays of paired train stays, task labels"),
    Experiment("early-paired", "early", "fusion_paired", freeze_encoders=True, test_sets=("paired",), **_EARLY_INIT,
               description="early fusion, frozen pretrained encoders, paired stays"),
    Experiment("early-partial", "early", "fusion_partial", ALL_UNIMODAL, {"missing": "learnable"},
               freeze_encoders=True, test_sets=_PARTIAL_TESTS, **_EARLY_INIT,
               description="early fusion, learnable vector for a missing X-ray, all train stays"),
    Experiment("early-partial-zeros", "early", "fusion_partial", ALL_UNIMODAL, {"missing": "zeros"},
               freeze_encoders=True, test_sets=_PARTIAL_TESTS, **_EARLY_INIT,
               description="early fusion, zeros for a missing X-ray, all train stays"),
    Experiment("joint-paired", "joint", "fusion_paired", test_sets=("paired",),
               description="joint fusion trained end to end on paired stays"),
    Experiment("joint-partial", "joint", "fusion_partial", ALL_UNIMODAL, {"missing": "learnable"},
               test_sets=_PARTIAL_TESTS, description="joint fusion, learnable vector for a missing X-ray"),
    Experiment("joint-partial-zeros", "joint", "fusion_partial", ALL_UNIMODAL, {"missing": "zeros"},
               test_sets=_PARTIAL_TESTS, description="joint fusion, zeros for a missing X-ray"),
    Experiment("mmtm", "mmtm", "fusion_paired", options={"layer_after": 4}, test_sets=("paired",),
               description="MMTM after ResNet layer4, paired stays"),
    Experiment("daft", "daft", "fusion_paired", options={"layer_after": {"in-hospital-mortality": 4, "phenotyping": 3}},
               test_sets=("paired",), description="DAFT after layer4 (mortality) / layer3 (phenotyping), paired stays"),
    Experiment(MULTIHEAD, "unified", "fusion_partial", ALL_UNIMODAL, test_sets=_PARTIAL_TESTS,
               description="multi-head fusion after Hayat et al. 2021a (per-modality heads, the head matching each "
                           "sample, a three-term loss) on all train stays; a new design, not the original code's "
                           "Unified, which is the joint network"),
    Experiment("medfuse-ri", "medfuse", "fusion_partial", ALL_UNIMODAL, test_sets=_PARTIAL_TESTS,
               description="MedFuse from randomly initialised encoders, all train stays"),
    Experiment("medfuse-pt", "medfuse", "fusion_partial", ALL_UNIMODAL, test_sets=_PARTIAL_TESTS, **_PT_INIT,
               description="MedFuse from pretrained encoders, all train stays"),
    Experiment(OPTIMAL, "medfuse", "fusion_partial", CONFIG_FRACTION, test_sets=_PARTIAL_TESTS, **_PT_INIT,
               description="MedFuse from pretrained encoders: the sweep point with the best validation AUROC "
                           "(optimal_fraction: sweep_best), or paired + train.uni_modal_fraction of EHR-only stays "
                           "(paper_fixed)"),
    Experiment("ehr-partial-available", "ehr_lstm", "ehr_partial", test_sets=("paired", "partial"),
               timeseries=AVAILABLE_TIMESERIES,
               description="ehr-partial on time series of the values stored by the end of the window (window_by: "
                           "storetime)"),
)
_BY_NAME = {e.name: e for e in _TABLE}
_PRETRAIN = Experiment(CXR_PRETRAIN, "cxr_resnet", "cxr_uni",
                       description="ResNet-34 on the 14 CheXpert labels of CXR_UNI (all views)")
_SWEEP = re.compile(r"^medfuse-p(\d{1,3})$")

#: Early / joint fusion with a learnable or zero vector for a missing X-ray: the original trains them with its
#: "tokens" trainer (switch token_early_stopping); they are also the four rows of Table A2 (table_a2_protocol).
TOKEN_EXPERIMENTS: tuple[str, ...] = ("early-partial", "early-partial-zeros", "joint-partial", "joint-partial-zeros")
TABLE_A2_EXPERIMENTS: tuple[str, ...] = TOKEN_EXPERIMENTS

#: Encoder starts set by a fidelity switch value: {(switch, value): {experiment: {field: source}}}.
#: - cxr_paired_start=scratch: the original's uni_paired_cxr.sh trains the CXR_PAIRED ResNet from random weights
#:   (neither --pretrained nor --load_state_cxr), so early fusion freezes a CXR encoder never pretrained on CXR_UNI.
#: - table_a2_protocol=fixed_lr_pretrained: Table A2's caption says every row was pretrained on EHR_PARTIAL; the
#:   encoders are then those of the README's stage one, the EHR LSTM of EHR_PARTIAL (uni_all.sh = ehr-partial) and
#:   the CXR_UNI ResNet (uni_cxr.sh = cxr-pretrain), which the tokens trainer loads with --load_state_ehr/_cxr.
#:   Joint fusion then starts from them too (and still trains them); early fusion freezes them.
POLICY_STARTS: dict[tuple[str, str], dict[str, dict[str, tuple[str, str] | None]]] = {
    ("cxr_paired_start", "scratch"): {"cxr-paired": {"cxr_init": None}},
    ("table_a2_protocol", "fixed_lr_pretrained"): {name: dict(_PT_INIT) for name in TABLE_A2_EXPERIMENTS},
}

#: Experiments that are not trained: the ensemble of medfuse-optimal and ehr-partial (appendix A.7).
ENSEMBLE = "ensemble"
ENSEMBLE_TEST_SETS: tuple[str, ...] = ("paired", "partial")


def sweep_name(fraction: float) -> str:
    """Experiment name of a uni-modal sweep point.

    >>> sweep_name(0.2), sweep_name(1.0), sweep_name(0.0)
    ('medfuse-p20', 'medfuse-p100', 'medfuse-p0')
    """
    return f"medfuse-p{round(fraction * 100)}"


def sweep_percent(name: str) -> int | None:
    """N of a sweep point's name ``medfuse-p{N}`` (0..100), None for any other name.

    >>> sweep_percent("medfuse-p20"), sweep_percent("medfuse-pt"), sweep_percent("medfuse-p101")
    (20, None, None)
    """
    match = _SWEEP.match(name)
    return int(match.group(1)) if match and int(match.group(1)) <= 100 else None


def get_experiment(name: str, task: str | None = None, policy: FidelityPolicy | None = None) -> Experiment:
    """The experiment called ``name``; ``task`` (optional) is checked against it. With a ``policy``, its encoder
    starts are those the policy's switches give (:data:`POLICY_STARTS`); without, those of the table."""
    spec = _table_experiment(name, task)
    if policy is None:
        return spec
    for (switch_name, value), starts in POLICY_STARTS.items():
        if getattr(policy, switch_name) == value and name in starts:
            spec = replace(spec, **starts[name])  # type: ignore[arg-type]
    return spec


def _table_experiment(name: str, task: str | None) -> Experiment:
    if name == CXR_PRETRAIN:
        if task not in (None, RADIOLOGY):
            raise MedfuseError(f"experiment '{CXR_PRETRAIN}' belongs to task '{RADIOLOGY}', not '{task}'")
        return _PRETRAIN
    if task == RADIOLOGY:
        raise MedfuseError(f"task '{RADIOLOGY}' has only the experiment '{CXR_PRETRAIN}', not '{name}'")
    if task is not None and task not in TASKS:
        raise MedfuseError(f"unknown task '{task}'; use one of {', '.join((*TASKS, RADIOLOGY))}")
    if name in _BY_NAME:
        return _BY_NAME[name]
    percent = sweep_percent(name)
    if percent is not None:
        return Experiment(name, "medfuse", "fusion_partial", percent / 100, test_sets=(), **_PT_INIT,
                          description=f"MedFuse from pretrained encoders, paired + {percent}% of EHR-only stays")
    raise MedfuseError(
        f"unknown experiment '{name}'; use one of {', '.join(_BY_NAME)}, medfuse-p<N> (N = 0..100) or {CXR_PRETRAIN}"
    )


def experiment_names(sweep: Sequence[float] = ()) -> list[str]:
    """Names of the trained experiments of a task, the sweep points after the fixed table."""
    names = [e.name for e in _TABLE]
    names.extend(sweep_name(f) for f in sweep if sweep_name(f) not in names)
    return names


def labels_of(task: str) -> list[str]:
    """Label columns of a task, the 14 CheXpert labels for ``radiology``."""
    if task == RADIOLOGY:
        return list(CHEXPERT_LABELS)
    try:
        return task_labels(task)
    except KeyError as exc:
        raise MedfuseError(f"unknown task '{task}'; use one of {', '.join((*TASKS, RADIOLOGY))}") from exc


def dependencies(experiment: str, task: str = SAME_TASK, policy: FidelityPolicy | None = None) -> list[tuple[str, str]]:
    """(task, experiment) pairs whose ``selected.json`` this experiment's encoders start from (EHR first).

    With the default ``task`` the same-task entries hold the placeholder ``"{task}"``; ensemble depends on
    the predictions of medfuse-optimal and ehr-partial. The ``policy`` (default: the table's starts, which are
    the corrected preset's) may change the starts, see :data:`POLICY_STARTS`.
    """
    if experiment == ENSEMBLE:
        return [(task, "medfuse-optimal"), (task, "ehr-partial")]
    spec = get_experiment(experiment, policy=policy)
    out = []
    for source in (spec.ehr_init, spec.cxr_init):
        if source is not None:
            out.append((task if source[0] == SAME_TASK else source[0], source[1]))
    return out


def test_sets(experiment: str) -> tuple[str, ...]:
    """The test sets predicted for an experiment (none for the sweep and the pretraining)."""
    if experiment == ENSEMBLE:
        return ENSEMBLE_TEST_SETS
    return get_experiment(experiment).test_sets


def validation_stays(training_set: str, partial_validation: str) -> str:
    """Which stays of the validation split a training-set kind validates on: ``"all"`` or ``"paired"``.

    EHR_PARTIAL validates on every stay; (EHR+CXR)_PARTIAL on every stay, or on the paired stays only under the
    switch ``partial_validation: paired_only`` (the original forces data_ratio 0 on validation); every other kind
    on paired stays.

    >>> validation_stays("fusion_partial", "all_stays"), validation_stays("fusion_partial", "paired_only")
    ('all', 'paired')
    >>> validation_stays("ehr_partial", "paired_only"), validation_stays("fusion_paired", "all_stays")
    ('all', 'paired')
    """
    if training_set not in SET_KINDS or training_set == "cxr_uni":
        raise MedfuseError(f"training set kind '{training_set}' has no task validation set")
    if training_set == "ehr_partial" or (training_set == "fusion_partial" and partial_validation != "paired_only"):
        return "all"
    return "paired"


def resolve_uni_fraction(spec: Experiment, configured: float) -> float | None:
    """The fraction of EHR-only train stays a partial training set holds; None for other sets."""
    if spec.training_set != "fusion_partial":
        return None
    if spec.uni_fraction == ALL_UNIMODAL:
        return 1.0
    if spec.uni_fraction == CONFIG_FRACTION:
        if not 0.0 <= configured <= 1.0:
            raise MedfuseError(f"--uni-fraction must lie in [0, 1], got {configured}")
        return float(configured)
    return float(spec.uni_fraction)  # type: ignore[arg-type]


def lr_for_draw(seed: int, draw: int, lr_min: float = 1e-5, lr_max: float = 1e-3) -> float:
    """Learning rate of draw ``draw``: log-uniform in [lr_min, lr_max], a pure function of (seed, draw).

    Every draw has its own random stream, so adding draws never changes the earlier ones.

    >>> lr_for_draw(1002, 0) == lr_for_draw(1002, 0)
    True
    >>> 1e-5 <= lr_for_draw(1002, 7) <= 1e-3
    True
    """
    if not 0 < lr_min <= lr_max:
        raise MedfuseError(f"learning-rate bounds must satisfy 0 < lr_min <= lr_max, got {lr_min} and {lr_max}")
    if draw < 0:
        raise MedfuseError(f"--draw must be >= 0, got {draw}")
    u = np.random.default_rng([int(seed) % 2**63, int(draw), 0x6C72]).random()
    return float(math.exp(math.log(lr_min) + u * (math.log(lr_max) - math.log(lr_min))))


#: The learning rate of the original's fixed-rate runs: its --lr default, which uni_cxr.sh and Table A2 use.
FIXED_LR = 1e-4
#: The original pretrains the CXR encoder for 100 epochs (uni_cxr.sh) against 50 for every other model; the budget
#: keeps that ratio to ``train.max_epochs``, so the paper scale gives 100 and the small scales stay small.
CXR_PRETRAIN_EPOCH_FACTOR = 2


@dataclass(frozen=True)
class TrainingBudget:
    """How one experiment is trained: a fixed learning rate or a search over ``draws`` draws, epochs, patience."""

    #: None = each draw's learning rate from :func:`lr_for_draw`.
    lr: float | None
    draws: int
    max_epochs: int
    #: None = no early stopping: every epoch runs, the best validation epoch is still kept.
    patience: int | None

    def cli_args(self) -> str:
        """``--max-epochs N --patience P [--lr LR]`` for ``medfuse-bench train`` (``--patience 0`` = none)."""
        args = [f"--max-epochs {self.max_epochs}", f"--patience {0 if self.patience is None else self.patience}"]
        if self.lr is not None:
            args.append(f"--lr {self.lr:g}")
        return " ".join(args)


def training_budget(experiment: str, policy: FidelityPolicy, train: Mapping[str, Any]) -> TrainingBudget:
    """The budget of ``experiment`` under ``policy``, from the resolved ``train`` config section (max_epochs,
    patience, lr_draws).

    >>> cfg = {"max_epochs": 50, "patience": 15, "lr_draws": 10}
    >>> training_budget("cxr-pretrain", FidelityPolicy.preset("original"), cfg)
    TrainingBudget(lr=0.0001, draws=1, max_epochs=100, patience=15)
    >>> training_budget("early-partial", FidelityPolicy.preset("original"), cfg)
    TrainingBudget(lr=0.0001, draws=1, max_epochs=50, patience=None)
    >>> training_budget("early-partial", FidelityPolicy.preset("corrected"), cfg)
    TrainingBudget(lr=None, draws=10, max_epochs=50, patience=15)
    """
    get_experiment(experiment)  # an unknown name is an error here too
    lr: float | None = None
    max_epochs, patience = int(train["max_epochs"]), int(train["patience"])
    if experiment == CXR_PRETRAIN and policy.cxr_pretrain_protocol == "fixed_lr_100_epochs":
        lr, max_epochs = FIXED_LR, CXR_PRETRAIN_EPOCH_FACTOR * max_epochs
    if experiment in TABLE_A2_EXPERIMENTS and policy.table_a2_protocol == "fixed_lr_pretrained":
        lr = FIXED_LR
    no_stopping = experiment in TOKEN_EXPERIMENTS and policy.token_early_stopping == "none"
    return TrainingBudget(lr=lr, draws=1 if lr is not None else int(train["lr_draws"]), max_epochs=max_epochs,
                          patience=None if no_stopping else patience)
