# The version-bump drift report: this workdir's data against the workdir of an earlier MIMIC-IV release.
# Its input functions (drift_inputs, with the check of drift.previous_workdir) are in common.smk.


rule drift:
    """Stays added, removed and kept, splits, prevalence, linked X-rays, previous models on the kept test stays."""

    # Over 20 lines: two workdirs, the tasks, the bootstrap of the model comparison and its switch.
    input:
        unpack(drift_inputs),
    output:
        json=f"{W}/drift/drift.json",
        md=f"{W}/drift/drift.md",
    params:
        previous=lambda wc, input: Path(input.previous[0]).parents[1],  # {previous}/etl/splits.parquet
        workdir=lambda wc, output: Path(output.json).parents[1],  # {workdir}/drift/drift.json
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
