# Evaluation: the paper's tables and figures with bootstrap CIs, and the leaderboard of the workdir's models.
# Both commands find their files under --workdir (medfuse_bench.paths); their input functions (report_inputs,
# leaderboard_inputs in common.smk) declare exactly the files they read there, so that a changed one reruns them.

# The evaluation settings both commands get as flags (flags win over the workdir's config.resolved.yaml).
BOOTSTRAP_ARGS = (
    f"--bootstrap {EVAL['bootstrap']} --seed {EVAL['seed']} --paired-reference {EVAL['paired_reference']}"
    f" --calibration-bins {EVAL['calibration_bins']}"
)
REPORT_ARGS = (
    f"{BOOTSTRAP_ARGS} --tasks {' '.join(TASK_LIST)} --drop-fractions {' '.join(map(str, EVAL['drop_fractions']))}"
    f" --unimodal-test-fractions {' '.join(map(str, EVAL['unimodal_test_fractions']))}"
    f" --subgroup-min-positives {EVAL['subgroup_min_positives']}"
    f" --subgroup-age-bands {' '.join(map(str, EVAL['subgroup_age_bands']))}"
)


# Over 20 lines: its output folder is flagged for `snakemake --report` (the report() block).
rule report:
    """Tables 1-5, A2, A3 and Figures 4, A1-A3 as CSV/Markdown/PNG, gathered in report.md with provenance."""

    # Over 20 lines: the report reads every prediction, metric and audit file, each declared.
    input:
        unpack(report_inputs),
    output:
        # the folder, report.md inside: its tables and figures are flagged for `snakemake --report report.html`
        report(
            directory(str(WD.report_dir)),
            patterns=["{name}.png", "{name}.csv"],
            category="Tables and figures",
            # where a file of the report folder appears in Snakemake's HTML report
            subcategory=lambda wc: "Figures" if wc.name.startswith("figure") else "Tables",
            labels={"file": "{name}"},
            caption="../report/tables_figures.rst",
        ),
    params:
        workdir=lambda wc, output: Path(output[0]).parent,  # {workdir}/report
        settings=f"--out-dir {q(WD.report_dir)} {REPORT_ARGS}",
    resources:
        mem_mb=4000,
    log:
        log_path("report"),
    benchmark:
        bench_path("report")
    conda:
        CONDA_ENV
    shell:
        "medfuse-bench report --workdir {params.workdir} {params.settings} > {log} 2>&1"


rule leaderboard:
    """Rank every model of the workdir (and any scored submission) on the partial and paired test sets."""
    input:
        unpack(leaderboard_inputs),
    output:
        expand(str(WD.leaderboard_md("{task}", "{test_set}")), task=TASK_LIST, test_set=["partial", "paired"]),
        page=report(str(WD.leaderboard_page), category="Leaderboard", caption="../report/leaderboard.rst"),
    params:
        workdir=lambda wc, output: Path(output[0]).parents[1],  # {workdir}/leaderboard/<task>_<test set>.md
        settings=f"--task {' '.join(TASK_LIST)} --test-set partial paired {BOOTSTRAP_ARGS}",
    log:
        log_path("leaderboard"),
    benchmark:
        bench_path("leaderboard")
    conda:
        CONDA_ENV
    shell:
        "medfuse-bench leaderboard --workdir {params.workdir} {params.settings} > {log} 2>&1"
