# Training seeds (train.seeds): every experiment of Tables 1-3 trained again once per extra seed at its selected
# learning rate, from the same selected pretrained encoders, and its test sets predicted again; the report's
# seed-variance table compares the spread over seeds with the bootstrap's. The original run (top-level seed) is one
# of the seeds, so a listed seed equal to it is not trained again; an empty list plans no job here.
# The two rules rerun the commands of rules train and predict (medfuse_bench/commands/train.py, predict.py) with
# their existing flags: --lr-from the experiment's selection and --seed, then --selected the seed run's checkpoint.
# SEEDS and the input functions of these rules (seed_train_inputs, seed_budget, ...) are in common.smk.


rule train_seed:
    """Train one experiment of Tables 1-3 again with another seed, at its selected learning rate and from the same
    selected encoders (train.seeds)."""

    # Over 20 lines: the train rule's settings, with the seed as a wildcard.
    input:
        unpack(seed_train_inputs),
    output:
        checkpoint=str(WD.seed_run_dir("{task}", "{experiment}", "{seed}") / "checkpoint.pt"),
        result=str(WD.seed_run_dir("{task}", "{experiment}", "{seed}") / "result.json"),
        history=str(WD.seed_run_dir("{task}", "{experiment}", "{seed}") / "history.csv"),
    wildcard_constraints:
        seed=r"\d+",
    params:
        tasks_dir=f"{W}/tasks",
        cxr_uni=f"{W}/cxr/cxr_uni.parquet",
        image_cache=CACHE,
        out_dir=lambda wc, output: Path(output.result).parent,
        init=init_flags,
        uni_fraction=seed_uni_fraction,
        bf16="--bf16" if TRAIN["bf16"] else "",
        augment="" if IMAGES["augment"] else "--no-augment",
        budget=seed_budget,
        settings=(
            f"--batch-size {TRAIN['batch_size']} --device {TRAIN['device']}"
            f" --crop {IMAGES['crop']} {POLICY.stage_args('train')}"
        ),
    threads: TRAIN["num_threads"]
    resources:
        gpu=GPUS_PER_JOB,
        mem_mb=8000,
        runtime=720,
    log:
        log_path("train_seed/{task}/{experiment}/seed{seed}"),
    benchmark:
        bench_path("train_seed/{task}/{experiment}/seed{seed}")
    conda:
        CONDA_ENV
    shell:
        "medfuse-bench train --tasks-dir {params.tasks_dir} --cxr-uni {params.cxr_uni}"
        " --image-cache {params.image_cache} --task {wildcards.task} --experiment {wildcards.experiment}"
        " --lr-from {input.selected} --seed {wildcards.seed} --out-dir {params.out_dir} {params.budget}"
        " {params.settings} {params.uni_fraction}"
        " {params.init} {params.bf16} {params.augment} --threads {threads} --quiet > {log} 2>&1"
        " && tail -n 1 {log} >&2"


rule predict_seed:
    """Test-set predictions of one seed run (train.seeds)."""

    # Over 20 lines: the predict rule's inputs and settings, with the seed as a wildcard.
    input:
        unpack(
            lambda wc: {
                "checkpoint": str(WD.seed_run_dir(wc.task, wc.experiment, wc.seed) / "checkpoint.pt"),
                **train_inputs(wc),
            }
        ),
    output:
        directory(str(WD.seed_predictions_dir("{task}", "{experiment}", "{seed}"))),
    wildcard_constraints:
        seed=r"\d+",
    params:
        tasks_dir=f"{W}/tasks",
        image_cache=CACHE,
        device=TRAIN["device"],
    threads: TRAIN["num_threads"]
    resources:
        gpu=GPUS_PER_JOB,
        mem_mb=8000,
    log:
        log_path("predict_seed/{task}/{experiment}/seed{seed}"),
    benchmark:
        bench_path("predict_seed/{task}/{experiment}/seed{seed}")
    conda:
        CONDA_ENV
    shell:
        "medfuse-bench predict --selected {input.checkpoint} --tasks-dir {params.tasks_dir}"
        " --image-cache {params.image_cache} --task {wildcards.task} --experiment {wildcards.experiment}"
        " --out-dir {output} --device {params.device} --threads {threads} > {log} 2>&1"


rule seed_runs:
    """Every seed run of train.seeds with its test-set predictions."""
    input:
        seed_prediction_dirs(),
