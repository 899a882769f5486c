# The cohort receipt: what the task data are, without the data (docs/leaderboard.md).

from medfuse_bench.etl.receipt import policy_args
from medfuse_bench.resources import SPLITS


rule receipt:
    """Counts and order-independent content hashes of every task and split, with the MIMIC-IV version, cohort
    preset, ETL fidelity switches and package version: {workdir}/receipt.json, recorded by every score."""

    # Over 20 lines: the receipt hashes every task table and time-series array, each declared.
    input:
        provenance=rules.ingest.output.provenance,
        samples=expand(rules.task_tables.output[0], task=TASK_LIST),
        arrays=expand(f"{W}/tasks/{{task}}/timeseries_{{split}}.npy", task=TASK_LIST, split=SPLITS),
        index=expand(rules.timeseries.output.index, task=TASK_LIST),
        normalizer=expand(rules.timeseries.output.normalizer, task=TASK_LIST),
    output:
        report(f"{W}/receipt.json", category="Data", caption="../report/receipt.rst"),
    params:
        workdir=lambda wc, output: Path(output[0]).parent,
        tasks=" ".join(TASK_LIST),
        preset=ETL["cohort_preset"],
        synthetic="--synthetic" if CFG["synthetic"]["enabled"] else "",
        policy=policy_args(POLICY),
    log:
        log_path("receipt"),
    benchmark:
        bench_path("receipt")
    conda:
        CONDA_ENV
    shell:
        "medfuse-bench receipt --workdir {params.workdir} --tasks {params.tasks} --preset {params.preset}"
        " {params.synthetic} {params.policy} --out {output} > {log} 2>&1"
