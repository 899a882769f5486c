# Configuration and helpers shared by the rule files.

import json
import shlex

from snakemake.utils import validate

from medfuse_bench.config import resolve_config, validate_config
from medfuse_bench.errors import MedfuseError
from medfuse_bench.resources import TASKS


validate(config, "../schemas/config.schema.yaml")
try:
    CFG = resolve_config(validate_config(config, source="config"))
except MedfuseError as exc:
    raise WorkflowError(str(exc))

W = CFG["workdir"]
FIDELITY = CFG["fidelity"]
TASK_LIST = CFG["tasks"]
SYNTHETIC = CFG["synthetic"]["enabled"]
MIMIC_IV_DIR = CFG["mimic_iv_dir"]
MIMIC_CXR_DIR = CFG["mimic_cxr_dir"]

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
