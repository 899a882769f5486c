# Configuration, shortcuts into it and the helpers and input functions that the stage files share.

import json
import shlex

from snakemake.utils import validate

from medfuse_bench.config import resolve_config, validate_config
from medfuse_bench.errors import MedfuseError
from medfuse_bench.fidelity import FidelityPolicy
from medfuse_bench.resources import TASKS
from medfuse_bench.train.experiments import (
    AVAILABLE_TIMESERIES,
    CXR_PRETRAIN,
    ENSEMBLE,
    RADIOLOGY,
    dependencies,
    experiment_names,
    get_experiment,
    test_sets,
)


validate(config, "../schemas/config.schema.yaml")
try:
    CFG = resolve_config(validate_config(config, source="config"))
except MedfuseError as exc:
    raise WorkflowError(str(exc))

W = CFG["workdir"]
FIDELITY = CFG["fidelity"]
# The fidelity policy of the run; a rule passes POLICY.stage_args("<stage>"): the preset and its own switches.
POLICY = FidelityPolicy.from_config(CFG)
TASK_LIST = CFG["tasks"]
MIMIC_IV_DIR = CFG["mimic_iv_dir"]
MIMIC_CXR_DIR = CFG["mimic_cxr_dir"]
ETL = CFG["etl"]
RAW = f"{W}/etl/raw"
TRAIN = CFG["train"]
IMAGES = CFG["images"]
CACHE = f"{W}/cache"
DRAWS = list(range(TRAIN["lr_draws"]))
EVAL = CFG["evaluation"]

# Software of every shell job for `snakemake --use-conda`: envs/medfuse-bench.yaml holds the dependencies and
# its post-deploy script installs this package into the new environment. Without --use-conda, jobs run in the
# environment that runs Snakemake (where `pip install -e .` put the package).
CONDA_ENV = "../../envs/medfuse-bench.yaml"

wildcard_constraints:
    task="|".join((*TASKS, "radiology")),
    split="train|val|test",
    draw=r"\d+",


def log_path(name):
    return f"{W}/logs/{name}.log"


def bench_path(name):
    return f"{W}/benchmarks/{name}.tsv"


def q(value):
    """Shell-quote a value for a command line."""
    return shlex.quote(str(value))


def opt(flag, value):
    """`--flag value`, or nothing when value is None."""
    return "" if value is None else f"{flag} {q(value)}"


# Training: which (task, experiment) jobs the config asks for, and what each one reads.


def trained_experiments():
    """Experiments of each task that the config asks for (train.models; null = all, sweep included)."""
    names = experiment_names(TRAIN["uni_modal_sweep"])
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
    return f"{W}/models/{task}/{experiment}/selected.json"


def task_inputs(task, timeseries=""):
    """A task's samples and the time series in subfolder ``timeseries`` of its folder (Experiment.timeseries)."""
    folder = f"{W}/tasks/{task}/{timeseries}".rstrip("/")
    arrays = [f"{folder}/timeseries_{split}.npy" for split in ("train", "val", "test")]
    return [f"{W}/tasks/{task}/samples.parquet", f"{folder}/timeseries_index.parquet", *arrays]


def train_inputs(wc):
    """Inputs of a train/predict job: its task's data (or CXR_UNI), the image cache, and encoders it starts from."""
    spec = get_experiment(wc.experiment, wc.task)
    inputs = {}
    if wc.task == RADIOLOGY:
        inputs["cxr_uni"] = f"{W}/cxr/cxr_uni.parquet"
    else:
        inputs["task"] = task_inputs(wc.task, spec.timeseries)
    if spec.uses_images:
        inputs["cache"] = f"{CACHE}/images.npy"
    inputs["init"] = [selected_path(t, e) for t, e in dependencies(wc.experiment, wc.task)]
    return inputs


def init_flags(wc):
    """`--ehr-init` / `--cxr-init` / `--cxr-weights` flags, in the order dependencies() lists the encoders."""
    spec = get_experiment(wc.experiment, wc.task)
    flags = []
    deps = iter(dependencies(wc.experiment, wc.task))
    if spec.ehr_init is not None:
        flags.append(f"--ehr-init {q(selected_path(*next(deps)))}")
    if spec.cxr_init is not None:
        flags.append(f"--cxr-init {q(selected_path(*next(deps)))}")
    if wc.experiment == CXR_PRETRAIN and TRAIN["cxr_weights"]:
        flags.append(f"--cxr-weights {q(TRAIN['cxr_weights'])}")
    return " ".join(flags)


def uni_fraction(wc):
    return TRAIN["uni_modal_fraction"].get(wc.task, 1.0)
