# Evaluation: the paper's tables and figures with bootstrap CIs, and the leaderboard of the workdir's models.


def report_subcategory(wildcards):
    """Where a file of the report folder appears in Snakemake's HTML report."""
    return "Figures" if wildcards.name.startswith("figure") else "Tables"


rule report:
    """Tables 1-5, A2, A3 and Figures 4, A1-A3 as CSV/Markdown/PNG, gathered in report.md with provenance."""
    input:
        rules.models.input,
        rules.etl.input,
        drift_report_inputs(),
        seed_prediction_dirs(),
    output:
        # the folder, report.md inside: its tables and figures are flagged for `snakemake --report report.html`
        report(
            directory(f"{W}/report"),
            patterns=["{name}.png", "{name}.csv"],
            category="Tables and figures",
            subcategory=report_subcategory,
            labels={"file": "{name}"},
            caption="../report/tables_figures.rst",
        ),
    params:
        workdir=lambda wc, output: Path(output[0]).parent,  # {workdir}/report
        out_dir=lambda wc, output: Path(output[0]),
        drop=" ".join(str(f) for f in EVAL["drop_fractions"]),
        unimodal=" ".join(str(f) for f in EVAL["unimodal_test_fractions"]),
        tasks=" ".join(TASK_LIST),
        bootstrap=EVAL["bootstrap"],
        seed=EVAL["seed"],
        reference=EVAL["paired_reference"],
        bins=EVAL["calibration_bins"],
        min_positives=EVAL["subgroup_min_positives"],
        age_bands=" ".join(str(a) for a in EVAL["subgroup_age_bands"]),
    resources:
        mem_mb=4000,
    log:
        log_path("report"),
    benchmark:
        bench_path("report")
    conda:
        CONDA_ENV
    shell:
        "medfuse-bench report --workdir {params.workdir} --out-dir {params.out_dir} --bootstrap {params.bootstrap}"
        " --seed {params.seed} --drop-fractions {params.drop} --unimodal-test-fractions {params.unimodal}"
        " --tasks {params.tasks} --paired-reference {params.reference} --calibration-bins {params.bins}"
        " --subgroup-min-positives {params.min_positives} --subgroup-age-bands {params.age_bands} > {log} 2>&1"


rule leaderboard:
    """Rank every model of the workdir (and any scored submission) on the partial and paired test sets."""
    input:
        rules.models.input,
        # every entry records the receipt it was measured on
        rules.receipt.output,
    output:
        expand(f"{W}/leaderboard/{{task}}_{{test_set}}.md", task=TASK_LIST, test_set=["partial", "paired"]),
        page=report(f"{W}/leaderboard/index.html", category="Leaderboard", caption="../report/leaderboard.rst"),
    params:
        workdir=lambda wc, output: Path(output[0]).parents[1],  # {workdir}/leaderboard/<task>_<test set>.md
        tasks=" ".join(TASK_LIST),
        bootstrap=EVAL["bootstrap"],
        seed=EVAL["seed"],
        reference=EVAL["paired_reference"],
        bins=EVAL["calibration_bins"],
    log:
        log_path("leaderboard"),
    benchmark:
        bench_path("leaderboard")
    conda:
        CONDA_ENV
    shell:
        "medfuse-bench leaderboard --workdir {params.workdir} --task {params.tasks} --test-set partial paired"
        " --bootstrap {params.bootstrap} --seed {params.seed} --paired-reference {params.reference}"
        " --calibration-bins {params.bins} > {log} 2>&1"
