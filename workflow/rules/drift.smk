# The version-bump drift report: this workdir's data against the workdir of an earlier MIMIC-IV release.

import os

DRIFT = CFG["drift"]


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


rule drift:
    """Stays added, removed and kept, splits, prevalence, linked X-rays, previous models on the kept test stays."""
    # Over 20 lines: two workdirs, the tasks, the bootstrap of the model comparison and its switch.
    input:
        unpack(drift_inputs),
    output:
        json=f"{W}/drift/drift.json",
        md=f"{W}/drift/drift.md",
    params:
        previous=lambda wc: drift_previous_workdir(),
        workdir=W,
        out_dir=lambda wc, output: Path(output.json).parent,
        tasks=" ".join(TASK_LIST),
        bootstrap=EVAL["bootstrap"],
        seed=EVAL["seed"],
        new_models="--new-models" if DRIFT["new_models"] else "",
    log:
        log_path("drift"),
    benchmark:
        bench_path("drift")
    resources:
        mem_mb=4000,
    conda:
        CONDA_ENV
    shell:
        "medfuse-bench drift --previous-workdir {params.previous:q} --workdir {params.workdir:q}"
        " --out-dir {params.out_dir} --tasks {params.tasks} --bootstrap {params.bootstrap} --seed {params.seed}"
        " {params.new_models} > {log} 2>&1"
