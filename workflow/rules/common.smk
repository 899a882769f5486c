# Configuration, shortcuts into it and the helpers and input functions that the stage files share.

import json
import os
from types import SimpleNamespace

from medfuse_bench.config import resolve_config, validate_config
from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl.layout import detect_layout, locate_cxr_tables
from medfuse_bench.fidelity import FidelityPolicy
from medfuse_bench.paths import Workdir
from medfuse_bench.report.seeds import extra_seeds, headline_experiments
from medfuse_bench.resources import TASKS
from medfuse_bench.train.experiments import (
    AVAILABLE_TIMESERIES,
    CXR_PRETRAIN,
    ENSEMBLE,
    MEDFUSE_PT,
    OPTIMAL,
    RADIOLOGY,
    dependencies,
    experiment_names,
    get_experiment,
    sweep_name,
    sweep_percent,
    test_sets,
    training_budget,
)
from medfuse_bench.train.optimal import sweep_fractions
from medfuse_bench.workflow_helpers import opt, q, split_arguments, task_arguments

# The project's own validation (defaults filled in, the same schema) rather than snakemake.utils.validate, whose
# message for an unknown key prints the whole schema: this one is a line naming the key and the closest valid one.
try:
    CFG = resolve_config(validate_config(config, source="config"))
except MedfuseError as exc:
    raise WorkflowError(str(exc))

W = CFG["workdir"]
# Every path under the workdir comes from medfuse_bench.paths (the layout the commands use too); str() for Snakemake.
WD = Workdir.at(W)
FIDELITY = CFG["fidelity"]
# The fidelity policy of the run; each rule passes POLICY.stage_args("<stage>"), the preset and its own switches.
POLICY = FidelityPolicy.from_config(CFG)
TASK_LIST = CFG["tasks"]
MIMIC_IV_DIR = CFG["mimic_iv_dir"]
MIMIC_CXR_DIR = CFG["mimic_cxr_dir"]
ETL = CFG["etl"]
RAW = str(WD.raw)
TRAIN = CFG["train"]
IMAGES = CFG["images"]
CACHE = str(WD.cache)
DRAWS = list(range(TRAIN["lr_draws"]))
EVAL = CFG["evaluation"]
# The uni-modal sweep (Figure A1); under optimal_fraction: sweep_best it also holds the configured fractions, and
# MedFuse (OPTIMAL) is its point with the best validation AUROC (rule select_optimal).
SWEEP = sweep_fractions(
    TRAIN["uni_modal_sweep"], [TRAIN["uni_modal_fraction"][t] for t in TASK_LIST], POLICY.optimal_fraction
)
# Extra training seeds of train.seeds (rules/seeds.smk); the top-level seed is the original run, not trained again.
SEEDS = extra_seeds(CFG["seed"], TRAIN["seeds"])
DRIFT = CFG["drift"]

# Software of every shell job for `snakemake --use-conda`: envs/medfuse-bench.yaml holds the dependencies and
# its post-deploy script installs this package into the new environment. Without --use-conda, jobs run in the
# environment that runs Snakemake (where `pip install -e .` put the package).
CONDA_ENV = "../../envs/medfuse-bench.yaml"


wildcard_constraints:
    task="|".join((*TASKS, "radiology")),
    split="train|val|test",
    draw=r"\d+",
    experiment=r"[a-z0-9-]+",


def _raw_files(find):
    try:
        return sorted(str(path) for path in find().values())
    except MedfuseError as exc:
        raise WorkflowError(str(exc))


def mimic_iv_files(wildcards=None):
    """Every raw MIMIC-IV table that ingest reads, located in the detected layout when the DAG is built, so that a
    file replaced or edited in place (a newer mtime) reruns ingest and what follows. On synthetic data: the synth
    rule's folder."""
    if CFG["synthetic"]["enabled"]:
        return [rules.synth.output.iv]
    return _raw_files(lambda: detect_layout(MIMIC_IV_DIR).files)


def mimic_cxr_tables(wildcards=None):
    """The three MIMIC-CXR-JPG tables (metadata, CheXpert labels, split) that ingest reads; on synthetic data the
    synth rule's folder."""
    if CFG["synthetic"]["enabled"]:
        return [rules.synth.output.cxr]
    return _raw_files(lambda: locate_cxr_tables(MIMIC_CXR_DIR))


def cxr_metadata_file(wildcards=None):
    """The raw MIMIC-CXR-JPG metadata table (where each image's path and study time come from)."""
    if CFG["synthetic"]["enabled"]:
        return [rules.synth.output.cxr]
    return _raw_files(lambda: {"cxr_metadata": locate_cxr_tables(MIMIC_CXR_DIR)["cxr_metadata"]})


def log_path(name):
    return str(WD.log(name))


def bench_path(name):
    return str(WD.benchmark(name))


# Training: which (task, experiment) jobs the config asks for, and what each one reads.


def trained_experiments():
    """Experiments of each task that the config asks for (train.models; null = all, sweep included)."""
    names = experiment_names(SWEEP)
    if TRAIN["models"] is not None:
        unknown = sorted(set(TRAIN["models"]) - set(names) - {ENSEMBLE})
        if unknown:
            raise WorkflowError(f"config key 'train.models' names unknown experiments: {', '.join(unknown)}")
        names = [n for n in names if n in TRAIN["models"]]
    return names


def predicted_experiments():
    """Experiments with test-set predictions: the trained ones that have test sets, plus the ensemble."""
    names = [n for n in trained_experiments() if test_sets(n)]
    if TRAIN["models"] is None or ENSEMBLE in TRAIN["models"]:
        names.append(ENSEMBLE)
    return names


def selected_path(task, experiment):
    return str(WD.selected(task, experiment))


def task_inputs(task, timeseries=""):
    """A task's samples and the time series in subfolder ``timeseries`` of its folder (Experiment.timeseries)."""
    arrays = [str(WD.timeseries(task, split, timeseries)) for split in ("train", "val", "test")]
    return [str(WD.samples(task)), str(WD.timeseries_index(task, timeseries)), *arrays]


def train_inputs(wc):
    """Inputs of a train/predict job: its task's data (or CXR_UNI), the image cache, and encoders it starts from
    (which the fidelity policy may change, e.g. cxr_paired_start)."""
    spec = get_experiment(wc.experiment, wc.task, POLICY)
    inputs = {}
    if wc.task == RADIOLOGY:
        inputs["cxr_uni"] = str(WD.cxr_uni)
    else:
        inputs["task"] = task_inputs(wc.task, spec.timeseries)
    if spec.uses_images:
        inputs["cache"] = str(WD.cache_array)
    inputs["init"] = [selected_path(t, e) for t, e in dependencies(wc.experiment, wc.task, POLICY)]
    if sweep_at_pt_lr(wc.experiment):
        inputs["lr_from"] = selected_path(wc.task, MEDFUSE_PT)
    return inputs


def init_flags(wc):
    """`--ehr-init` / `--cxr-init` / `--cxr-weights` flags, in the order dependencies() lists the encoders."""
    spec = get_experiment(wc.experiment, wc.task, POLICY)
    flags = []
    deps = iter(dependencies(wc.experiment, wc.task, POLICY))
    if spec.ehr_init is not None:
        flags.append(f"--ehr-init {q(selected_path(*next(deps)))}")
    if spec.cxr_init is not None:
        flags.append(f"--cxr-init {q(selected_path(*next(deps)))}")
    if wc.experiment == CXR_PRETRAIN and TRAIN["cxr_weights"] and POLICY.cxr_pretrain_init == "imagenet":
        flags.append(f"--cxr-weights {q(TRAIN['cxr_weights'])}")
    if sweep_at_pt_lr(wc.experiment):
        flags.append(f"--lr-from {q(selected_path(wc.task, MEDFUSE_PT))}")
    return " ".join(flags)


def train_job_inputs(wc):
    """train_inputs, plus the selected checkpoints that the selection files of its encoders name."""
    inputs = train_inputs(wc)
    inputs["init_checkpoints"] = [str(Path(p).with_name("checkpoint.pt")) for p in inputs["init"]]
    return inputs


if TRAIN["cxr_weights"] and POLICY.cxr_pretrain_init != "imagenet":
    raise WorkflowError(
        f"config key 'train.cxr_weights' names '{TRAIN['cxr_weights']}' but the fidelity switch cxr_pretrain_init is "
        f"'{POLICY.cxr_pretrain_init}'; set fidelity_switches: {{cxr_pretrain_init: imagenet}} to start the CXR_UNI "
        "pretraining from it, or set train.cxr_weights to null"
    )


def experiment_budget(wc):
    """The training budget of an experiment under the policy: fixed learning rate or search, epochs, patience."""
    return training_budget(wc.experiment, POLICY, TRAIN)


def run_draws(wc):
    """Learning-rate draws of an experiment: train.lr_draws, or one where the policy fixes the learning rate."""
    return list(range(experiment_budget(wc).draws))


def uni_fraction(wc):
    return TRAIN["uni_modal_fraction"].get(wc.task, 1.0)


# The uni-modal sweep and MedFuse (OPTIMAL) (fidelity switches sweep_lr and optimal_fraction).


def sweep_experiments():
    return [sweep_name(f) for f in SWEEP]


def sweep_at_pt_lr(experiment):
    """Whether a run is a sweep point trained once at MedFuse (PT)'s selected learning rate (sweep_lr: medfuse_pt_best)."""
    return POLICY.sweep_lr == "medfuse_pt_best" and sweep_percent(experiment) is not None


def run_results(wc):
    """result.json of every run that `select` compares: one run for a sweep point at MedFuse (PT)'s lr, else every draw."""
    draws = [0] if sweep_at_pt_lr(wc.experiment) else run_draws(wc)
    return [str(WD.run_result(wc.task, wc.experiment, d)) for d in draws]


def run_checkpoints(wc):
    """The best checkpoint of every run that `select` compares (temporary: select keeps the chosen one)."""
    return [p.replace("result.json", "checkpoint.pt") for p in run_results(wc)]


def optimal_inputs(wc):
    """Inputs of select_optimal: every sweep point's selection, and MedFuse (PT)'s when the sweep took its lr."""
    inputs = {"points": [selected_path(wc.task, e) for e in sweep_experiments()]}
    if POLICY.sweep_lr == "medfuse_pt_best":
        inputs["pt"] = selected_path(wc.task, MEDFUSE_PT)
    return inputs


# Training seeds (train.seeds, workflow/rules/seeds.smk).


def seed_experiments():
    """Experiments retrained per seed: those of Tables 1-3 (Unified row under the policy) that the config predicts."""
    headline = set(headline_experiments(POLICY))
    return [e for e in predicted_experiments() if e in headline]


def seed_prediction_dirs(wildcards=None):
    """Every per-seed prediction folder the config asks for (none when train.seeds adds no seed)."""
    return [str(WD.seed_predictions_dir(t, e, s)) for t in TASK_LIST for e in seed_experiments() for s in SEEDS]


def seed_train_inputs(wc):
    """A train job's inputs (data, image cache, the selected encoders it starts from) and the experiment's own
    selection, whose learning rate the seed run takes."""
    return {**train_job_inputs(wc), "selected": selected_path(wc.task, wc.experiment)}


def seed_uni_fraction(wc):
    """`--uni-fraction`, except for MedFuse (OPTIMAL) chosen from the sweep: its selection names the fraction."""
    if wc.experiment == OPTIMAL and POLICY.optimal_fraction == "sweep_best":
        return ""
    return f"--uni-fraction {uni_fraction(wc)}"


def seed_budget(wc):
    """Epochs and patience of the experiment's budget; the learning rate comes from its selection (--lr-from)."""
    budget = experiment_budget(wc)
    return f"--max-epochs {budget.max_epochs} --patience {0 if budget.patience is None else budget.patience}"


# The version-bump drift report (workflow/rules/drift.smk).


def drift_previous_workdir():
    """drift.previous_workdir, checked: set, and not this workdir."""
    previous = DRIFT["previous_workdir"]
    if previous is None:
        raise WorkflowError(
            "target 'drift' needs config key 'drift.previous_workdir': the workdir where the previous release's ETL "
            "ran (see docs/version-bump.md)"
        )
    if os.path.normpath(previous) == W:
        raise WorkflowError(f"config key 'drift.previous_workdir' ({previous}) is this workdir; name the earlier one")
    return previous


def drift_inputs(wc):
    previous = drift_previous_workdir()
    inputs = {
        "samples": expand(f"{W}/tasks/{{task}}/samples.parquet", task=TASK_LIST),
        "splits": rules.splits.output[0],
        "stays": rules.cohort.output.stays,
        "provenance": rules.ingest.output.provenance,
        "config": rules.resolved_config.output[0],
        # not made by this run: a missing one stops the DAG naming the file
        "previous": [f"{previous}/etl/splits.parquet", f"{previous}/etl/stays.parquet"],
    }
    if DRIFT["new_models"]:
        inputs["models"] = rules.models.input
    return inputs


def drift_report_inputs():
    """The drift report, for the report to link, when a previous workdir is configured."""
    return rules.drift.output if DRIFT["previous_workdir"] is not None else []


# Evaluation: what report and leaderboard read under the workdir (workflow/rules/report.smk).


def prediction_dirs():
    return expand(str(WD.predictions_dir("{task}", "{experiment}")), task=TASK_LIST, experiment=predicted_experiments())


def report_inputs(wildcards=None):
    """The files `report` reads: config, task tables, subgroups and normalizers, ETL summary and provenance, leakage
    audits, predictions, selections and the runs they chose from, the cohort receipt, and the drift report when one
    is made."""
    experiments = trained_experiments()
    # MedFuse (OPTIMAL) under sweep_best has no runs of its own: select_optimal chooses a sweep point
    own_runs = [e for e in experiments if not (e == OPTIMAL and POLICY.optimal_fraction == "sweep_best")]
    trained = [(t, e) for t in TASK_LIST for e in own_runs]
    folders = {get_experiment(e, t, POLICY).timeseries for t, e in trained if e != CXR_PRETRAIN}
    return {
        "config": str(WD.config_resolved),
        "samples": [str(WD.samples(t)) for t in TASK_LIST],
        "subgroups": [str(WD.subgroups(t)) for t in TASK_LIST],
        "normalizers": [str(WD.normalizer(t, f)) for t in TASK_LIST for f in sorted(folders | {""})],
        "summary": [str(WD.summary), str(WD.summary_md)],
        "provenance": str(WD.provenance),
        "audits": [str(p) for t in TASK_LIST for p in (WD.audit_summary(t), WD.audit_html(t))],
        "predictions": prediction_dirs(),
        "selected": [selected_path(t, e) for t in TASK_LIST for e in experiments],
        "runs": [r for t, e in trained for r in run_results(SimpleNamespace(task=t, experiment=e))],
        "drift": drift_report_inputs(),
        "seeds": seed_prediction_dirs(),  # train.seeds runs (rules/seeds.smk): the seed-variance table
        "receipt": rules.receipt.output,  # its sha256 goes into the provenance table
        # not read: the report is made only once the split check has passed
        "split_check": rules.check_splits.output,
    }


def leaderboard_inputs(wildcards=None):
    """The files `leaderboard` reads: config, task tables, predictions and the scored submissions with the
    probabilities kept beside them (found when the DAG is built; a new score file reruns it)."""
    found = [f for t in TASK_LIST for s in ("partial", "paired") for f in WD.score_files(t, s)]
    scores = [str(p) for f in found for p in (f, f.with_suffix(".parquet")) if p.exists()]
    return {
        "config": str(WD.config_resolved),
        "samples": [str(WD.samples(t)) for t in TASK_LIST],
        "predictions": prediction_dirs(),
        "scores": scores,
        # every entry records the receipt it was measured on
        "receipt": rules.receipt.output,
    }
