# Evaluation: the paper's tables and figures with bootstrap CIs, and the leaderboard of the workdir's models.

EVAL = CFG["evaluation"]


rule report:
    """Tables 1-5, A2, A3 and Figures 4, A1-A3 as CSV/Markdown/PNG, gathered in report.md with provenance."""
    input:
        rules.models.input,
        rules.etl.input,
    output:
        f"{W}/report/report.md",
    params:
        out_dir=f"{W}/report",
        drop=" ".join(str(f) for f in EVAL["drop_fractions"]),
        unimodal=" ".join(str(f) for f in EVAL["unimodal_test_fractions"]),
        tasks=" ".join(TASK_LIST),
    resources:
        mem_mb=4000,
    log:
        log_path("report"),
    benchmark:
        bench_path("report")
    shell:
        "medfuse-bench report --workdir {W} --out-dir {params.out_dir} --bootstrap {EVAL[bootstrap]}"
        " --seed {EVAL[seed]} --drop-fractions {params.drop} --unimodal-test-fractions {params.unimodal}"
        " --tasks {params.tasks} > {log} 2>&1"


rule leaderboard:
    """Rank every model of the workdir (and any scored submission) on the partial and paired test sets."""
    input:
        rules.models.input,
    output:
        expand(f"{W}/leaderboard/{{task}}_{{test_set}}.md", task=TASK_LIST, test_set=["partial", "paired"]),
    params:
        tasks=" ".join(TASK_LIST),
    log:
        log_path("leaderboard"),
    shell:
        "medfuse-bench leaderboard --workdir {W} --task {params.tasks} --test-set partial paired"
        " --bootstrap {EVAL[bootstrap]} --seed {EVAL[seed]} > {log} 2>&1"
