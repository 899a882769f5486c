# ETL: raw tables -> Parquet -> cohort -> variables / phenotypes -> splits -> CXR -> task tables -> time series.


rule resolved_config:
    """Write the validated configuration, scale values filled in, next to the results."""
    output:
        f"{W}/config.resolved.yaml",
    params:
        resolved=CFG,
    log:
        log_path("resolved_config"),
    benchmark:
        bench_path("resolved_config")
    # No subcommand: the configuration with this run's --config overrides exists only in Snakemake's process
    # (medfuse_bench/config/resolved_config.py).
    run:
        from medfuse_bench.config.resolved_config import write_resolved_config

        write_resolved_config(params.resolved, output[0])


rule ingest:
    """Detect the MIMIC-IV layout and convert the needed tables to Parquet, filtering events to the 17 variables."""

    # Over 20 lines: the command takes the raw folders besides the files Snakemake watches, DuckDB's memory limit and
    # the threads of DuckDB and Polars.
    input:
        iv=mimic_iv_files,
        cxr=mimic_cxr_tables,
    output:
        raw=directory(RAW),
        provenance=f"{W}/etl/provenance.json",
    params:
        iv=MIMIC_IV_DIR,
        cxr=MIMIC_CXR_DIR,
        memory_limit=ETL["duckdb_memory_limit"],
    threads: 2
    resources:
        mem_mb=6000,
    log:
        log_path("ingest"),
    benchmark:
        bench_path("ingest")
    conda:
        CONDA_ENV
    shell:
        "POLARS_MAX_THREADS={threads} medfuse-bench ingest --mimic-iv {params.iv:q} --mimic-cxr {params.cxr:q}"
        " --out-dir {output.raw}"
        " --provenance {output.provenance} --memory-limit {params.memory_limit}"
        " --threads {threads} > {log} 2>&1"


rule cohort:
    """ICU stays of the benchmark cohort with in-hospital mortality."""
    input:
        raw=RAW,
    output:
        stays=f"{W}/etl/stays.parquet",
        counts=f"{W}/etl/cohort_counts.json",
    params:
        policy=POLICY.stage_args("cohort"),
    log:
        log_path("cohort"),
    benchmark:
        bench_path("cohort")
    resources:
        mem_mb=4000,
    conda:
        CONDA_ENV
    shell:
        "medfuse-bench cohort --raw-dir {input.raw} --out {output.stays} --counts {output.counts}"
        " {params.policy} > {log} 2>&1"


rule variables:
    """Map item ids to the 17 clinical variables and clean their values."""
    input:
        raw=RAW,
        stays=rules.cohort.output.stays,
    output:
        events=f"{W}/etl/events.parquet",
        counts=f"{W}/etl/variables_counts.json",
    params:
        policy=POLICY.stage_args("variables"),
    # Polars works on every core it is given; declared (and passed as POLARS_MAX_THREADS, over 20 lines), so that no
    # job is scheduled beside it on those cores.
    threads: 2
    log:
        log_path("variables"),
    benchmark:
        bench_path("variables")
    resources:
        mem_mb=6000,
    conda:
        CONDA_ENV
    shell:
        "POLARS_MAX_THREADS={threads} medfuse-bench variables --raw-dir {input.raw} --stays {input.stays}"
        " --out {output.events} --stats {output.counts} {params.policy} > {log} 2>&1"


rule phenotypes:
    """The 25 benchmark phenotype labels of each stay from its admission's ICD codes."""

    # Over 20 lines: two optional mapping files (phenotype_definitions, etl.icd10_gem_file).
    input:
        raw=RAW,
        stays=rules.cohort.output.stays,
    output:
        labels=f"{W}/etl/phenotypes.parquet",
        stats=f"{W}/etl/phenotype_mapping.json",
    params:
        policy=POLICY.stage_args("phenotypes"),
        definitions=opt("--definitions", CFG["phenotype_definitions"]),
        gem=opt("--gem-file", ETL["icd10_gem_file"]),
    log:
        log_path("phenotypes"),
    benchmark:
        bench_path("phenotypes")
    conda:
        CONDA_ENV
    shell:
        "medfuse-bench phenotypes --raw-dir {input.raw} --stays {input.stays} --out {output.labels}"
        " --stats {output.stats} {params.policy} {params.definitions} {params.gem} > {log} 2>&1"


rule splits:
    """Patient-level train/val/test split from a salted hash of subject_id (stable across MIMIC versions)."""
    input:
        raw=RAW,
        stays=rules.cohort.output.stays,
    output:
        f"{W}/etl/splits.parquet",
    params:
        split=split_arguments(ETL["split"]),
    log:
        log_path("splits"),
    benchmark:
        bench_path("splits")
    conda:
        CONDA_ENV
    shell:
        "medfuse-bench splits --stays {input.stays} --raw-dir {input.raw} --out {output} {params.split} > {log} 2>&1"


rule cxr_uni:
    """CXR_UNI: every labelled X-ray with its split (switch cxr_uni_split; EHR val/test patients never in train)."""
    input:
        raw=RAW,
        splits=rules.splits.output,
    output:
        f"{W}/cxr/cxr_uni.parquet",
    params:
        policy=POLICY.stage_args("cxr_uni"),
    log:
        log_path("cxr_uni"),
    benchmark:
        bench_path("cxr_uni")
    conda:
        CONDA_ENV
    shell:
        "medfuse-bench cxr-uni --raw-dir {input.raw} --splits {input.splits} --out {output} {params.policy}"
        " > {log} 2>&1"


rule task_tables:
    """One row per sample of a task: split, linked X-ray, labels."""

    # Over 20 lines: five inputs, and the task's preset and overrides.
    input:
        raw=RAW,
        stays=rules.cohort.output.stays,
        events=rules.variables.output.events,
        phenotypes=rules.phenotypes.output.labels,
        splits=rules.splits.output,
    output:
        f"{W}/tasks/{{task}}/samples.parquet",
    params:
        preset=ETL["cohort_preset"],
        overrides=lambda wc: q(json.dumps(ETL["task_overrides"].get(wc.task, {}))),
        policy=POLICY.stage_args("task_tables"),
    log:
        log_path("task_tables_{task}"),
    benchmark:
        bench_path("task_tables_{task}")
    conda:
        CONDA_ENV
    shell:
        "medfuse-bench task-tables --stays {input.stays} --events {input.events} --phenotypes {input.phenotypes}"
        " --splits {input.splits} --cxr-metadata {input.raw}/cxr_metadata.parquet --task {wildcards.task}"
        " --preset {params.preset} --overrides {params.overrides} --out {output} {params.policy} > {log} 2>&1"


rule subgroups:
    """Per-sample attributes of a task (sex, age, race group, insurance, linked X-ray and its age) for the report's
    subgroup table."""
    input:
        raw=RAW,
        stays=rules.cohort.output.stays,
        samples=rules.task_tables.output,
    output:
        f"{W}/tasks/{{task}}/subgroups.parquet",
    log:
        log_path("subgroups_{task}"),
    benchmark:
        bench_path("subgroups_{task}")
    conda:
        CONDA_ENV
    shell:
        "medfuse-bench subgroups --samples {input.samples} --stays {input.stays} --raw-dir {input.raw}"
        " --out {output} > {log} 2>&1"


rule timeseries:
    """Discretised, imputed, normalised 76-feature time series of a task, one float32 array per split."""

    # Over 20 lines: five outputs, and the two threads its Polars queries use (POLARS_MAX_THREADS).
    input:
        events=rules.variables.output.events,
        samples=rules.task_tables.output,
    output:
        arrays=expand(f"{W}/tasks/{{{{task}}}}/timeseries_{{split}}.npy", split=["train", "val", "test"]),
        index=f"{W}/tasks/{{task}}/timeseries_index.parquet",
        normalizer=f"{W}/tasks/{{task}}/normalizer.json",
    params:
        out_dir=lambda wc, output: Path(output.index).parent,
        timestep=ETL["timestep_hours"],
        policy=POLICY.stage_args("timeseries"),
    threads: 2
    resources:
        mem_mb=8000,
    log:
        log_path("timeseries_{task}"),
    benchmark:
        bench_path("timeseries_{task}")
    conda:
        CONDA_ENV
    shell:
        "POLARS_MAX_THREADS={threads} medfuse-bench timeseries --events {input.events} --samples {input.samples} --out-dir {params.out_dir}"
        " --timestep {params.timestep} {params.policy} > {log} 2>&1"


# The task's time series built from the values stored by the end of the window (window_by: storetime), for
# experiment ehr-partial-available: what the paper's charttime window is worth. The timeseries rule's command.
use rule timeseries as timeseries_available with:
    output:
        arrays=expand(
            f"{W}/tasks/{{{{task}}}}/{AVAILABLE_TIMESERIES}/timeseries_{{split}}.npy", split=["train", "val", "test"]
        ),
        index=f"{W}/tasks/{{task}}/{AVAILABLE_TIMESERIES}/timeseries_index.parquet",
        normalizer=f"{W}/tasks/{{task}}/{AVAILABLE_TIMESERIES}/normalizer.json",
    params:
        out_dir=lambda wc, output: Path(output.index).parent,
        timestep=ETL["timestep_hours"],
        policy=POLICY.replace(window_by="storetime").stage_args("timeseries"),
    log:
        log_path("timeseries_available_{task}"),
    benchmark:
        bench_path("timeseries_available_{task}")


rule etl_summary:
    """Samples per split, paired vs partial, label prevalence, cohort and ICD-mapping counts, preset counts."""

    # Over 20 lines: the summary reads every stage's counts and task table, each declared.
    # Longer than a rule should be: every file the summary reads is declared, so that a change to one reruns it.
    input:
        samples=expand(f"{W}/tasks/{{task}}/samples.parquet", task=TASK_LIST),
        cxr=rules.cxr_uni.output[0],
        raw=RAW,
        stays=rules.cohort.output.stays,
        events=rules.variables.output.events,
        splits=rules.splits.output[0],
        counts=rules.cohort.output.counts,
        variables=rules.variables.output.counts,
        mapping=rules.phenotypes.output.stats,
    output:
        json=f"{W}/tasks/summary.json",
        md=f"{W}/tasks/summary.md",
    params:
        samples=lambda wc, input: task_arguments(TASK_LIST, input.samples),
        policy=POLICY.stage_args("task_tables"),
    log:
        log_path("etl_summary"),
    benchmark:
        bench_path("etl_summary")
    conda:
        CONDA_ENV
    shell:
        "medfuse-bench etl-summary --samples {params.samples} --cxr-uni {input.cxr} --stays {input.stays}"
        " --events {input.events} --splits {input.splits} --cxr-metadata {input.raw}/cxr_metadata.parquet"
        " --cohort-counts {input.counts} --variables-counts {input.variables} --phenotype-mapping {input.mapping}"
        " --out-json {output.json} --out-md {output.md} {params.policy} > {log} 2>&1"


rule check_splits:
    """Fail the DAG if any subject appears in two splits of any dataset."""
    input:
        samples=expand(f"{W}/tasks/{{task}}/samples.parquet", task=TASK_LIST),
        cxr=rules.cxr_uni.output[0],
        splits=rules.splits.output[0],
    output:
        f"{W}/etl/split_check.txt",
    params:
        samples=lambda wc, input: task_arguments(TASK_LIST, input.samples),
    log:
        log_path("check_splits"),
    benchmark:
        bench_path("check_splits")
    conda:
        CONDA_ENV
    shell:
        "medfuse-bench check-splits --samples {params.samples} --cxr-uni {input.cxr} --splits {input.splits}"
        " --out {output} > {log} 2>&1"


rule etl:
    """Everything the models need: task tables, time series, CXR_UNI, summary, split check, receipt."""
    input:
        rules.resolved_config.output,
        expand(rules.timeseries.output.index, task=TASK_LIST),
        expand(rules.subgroups.output, task=TASK_LIST),
        rules.etl_summary.output,
        rules.check_splits.output,
        # counts and content hashes of every task and split (workflow/rules/receipt.smk)
        f"{W}/receipt.json",
        # the leakage audit of each task (workflow/rules/leakage_audit.smk); a blocking finding stops the run here
        expand(f"{W}/audit/{{task}}/summary.json", task=TASK_LIST),
