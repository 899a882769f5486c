# Leakage audit: icu-leakage-check, a tool from outside this project, audits each task's cohort with the provenance the
# pipeline has (medfuse_bench/leakage_audit). A blocking finding fails the run; docs/leakage.md.


rule leakage_audit:
    """Audit a task's cohort for leakage with icu-leakage-check: HTML / JSON / Markdown reports and the pipeline's
    reading of them; fails on a CRITICAL finding the run's protocol does not explain or an id in two splits."""

    # Over 20 lines: the audit reads every file of the task's provenance (samples, stays, events, raw labs, X-ray
    # metadata, the time series and its normaliser) and writes four reports.
    input:
        samples=rules.task_tables.output,
        stays=rules.cohort.output.stays,
        events=rules.variables.output.events,
        raw=RAW,
        arrays=rules.timeseries.output.arrays,
        index=rules.timeseries.output.index,
        normalizer=rules.timeseries.output.normalizer,
    output:
        html=f"{W}/audit/{{task}}/leakage.html",
        json=f"{W}/audit/{{task}}/leakage.json",
        md=f"{W}/audit/{{task}}/leakage.md",
        summary=f"{W}/audit/{{task}}/summary.json",
    params:
        out_dir=lambda wc, output: Path(output.summary).parent,
        timeseries_dir=lambda wc, input: Path(input.index).parent,
        policy=POLICY.stage_args("task_tables", "timeseries"),
        seed=CFG["seed"],
    resources:
        mem_mb=4000,
    log:
        log_path("leakage_audit_{task}"),
    benchmark:
        bench_path("leakage_audit_{task}")
    conda:
        CONDA_ENV
    shell:
        "medfuse-bench leakage-audit --task {wildcards.task} --samples {input.samples} --stays {input.stays}"
        " --events {input.events} --cxr-metadata {input.raw}/cxr_metadata.parquet"
        " --raw-labevents {input.raw}/labevents.parquet --timeseries-dir {params.timeseries_dir}"
        " --out-dir {params.out_dir} --seed {params.seed} {params.policy} > {log} 2>&1"
