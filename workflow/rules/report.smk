# Evaluation: the paper's tables and figures with bootstrap CIs, and the leaderboard of the workdir's models.
# Both commands find their files under --workdir (medfuse_bench.paths); the input functions below declare exactly
# the files they read there, so that a changed one reruns them.

from types import SimpleNamespace


def prediction_dirs():
    return expand(str(WD.predictions_dir("{task}", "{experiment}")), task=TASK_LIST, experiment=predicted_experiments())


def report_inputs(wildcards=None):
    """The files `report` reads: config, task tables and their normalizers, ETL summary and provenance, leakage
    audits, predictions, selections and the runs they chose from, and the drift report when one is made."""
    experiments = trained_experiments()
    trained = [(t, e) for t in TASK_LIST for e in experiments
               if not (e == OPTIMAL and POLICY.optimal_fraction == "sweep_best")]  # chosen by select_optimal
    folders = {get_experiment(e, t, POLICY).timeseries for t, e in trained if e != CXR_PRETRAIN}
    return {
        "config": str(WD.config_resolved),
        "samples": [str(WD.samples(t)) for t in TASK_LIST],
        "normalizers": [str(WD.normalizer(t, f)) for t in TASK_LIST for f in sorted(folders | {""})],
        "summary": [str(WD.summary), str(WD.summary_md)],
        "provenance": str(WD.provenance),
        "audits": [str(p) for t in TASK_LIST for p in (WD.audit_summary(t), WD.audit_html(t))],
        "predictions": prediction_dirs(),
        "selected": [selected_path(t, e) for t in TASK_LIST for e in experiments],
        "runs": [r for t, e in trained for r in run_results(SimpleNamespace(task=t, experiment=e))],
        "drift": drift_report_inputs(),
        # not read: the report is made only once the split check has passed
        "split_check": rules.check_splits.output,
    }


def leaderboard_inputs(wildcards=None):
    """The files `leaderboard` reads: config, task tables, predictions and the scored submissions (found when the
    DAG is built; a new score file reruns it)."""
    scores = [str(p) for t in TASK_LIST for s in ("partial", "paired") for p in WD.score_files(t, s)]
    return {"config": str(WD.config_resolved), "samples": [str(WD.samples(t)) for t in TASK_LIST],
            "predictions": prediction_dirs(), "scores": scores}


# The evaluation settings both commands get as flags (flags win over the workdir's config.resolved.yaml).
BOOTSTRAP_ARGS = f"--bootstrap {EVAL['bootstrap']} --seed {EVAL['seed']}"
REPORT_ARGS = (
    f"{BOOTSTRAP_ARGS} --tasks {' '.join(TASK_LIST)} --drop-fractions {' '.join(map(str, EVAL['drop_fractions']))}"
    f" --unimodal-test-fractions {' '.join(map(str, EVAL['unimodal_test_fractions']))}"
)


rule report:
    """Tables 1-5, A2, A3 and Figures 4, A1-A3 as CSV/Markdown/PNG, gathered in report.md with provenance."""
    input:
        unpack(report_inputs),
    output:
        str(WD.report_md),
    params:
        workdir=W,
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
    params:
        workdir=W,
        settings=f"--task {' '.join(TASK_LIST)} --test-set partial paired {BOOTSTRAP_ARGS}",
    log:
        log_path("leaderboard"),
    benchmark:
        bench_path("leaderboard")
    conda:
        CONDA_ENV
    shell:
        "medfuse-bench leaderboard --workdir {params.workdir} {params.settings} > {log} 2>&1"
