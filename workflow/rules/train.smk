# Training: image cache, CheXpert pretraining, every experiment of the paper as (task, experiment, draw) jobs,
# learning-rate selection on validation AUROC, test-set predictions and the ensemble.

# GPUs each training and prediction job asks the scheduler for (`gpu` resource; the SLURM plugin's --gpus):
# one with train.device: cuda, none with auto or cpu (auto still trains on a GPU where the node has one).
GPUS_PER_JOB = 1 if TRAIN["device"] == "cuda" else 0


# Over 20 lines: every file it reads is an input (the raw metadata and each task's samples), so that a changed one
# rebuilds the cache, and its thread count reaches the scheduler.
rule image_cache:
    """Decode and resize every CXR_UNI image (and linked images without CheXpert labels) once into a uint8 memmap."""

    # Over 20 lines: five inputs (the images and every table that names one), and the cache's settings.
    input:
        cxr_uni=rules.cxr_uni.output,
        samples=[str(WD.samples(task)) for task in TASK_LIST],
        raw=RAW,
        images=MIMIC_CXR_DIR,
        metadata=cxr_metadata_file,
    output:
        array=str(WD.cache_array),
        index=str(WD.cache_index),
    params:
        size=IMAGES["resize"],
        skip="--skip-unreadable" if IMAGES["skip_unreadable"] else "",
        out_dir=lambda wc, output: Path(output.array).parent,
    threads: 2
    resources:
        mem_mb=4000,
    log:
        log_path("image_cache"),
    benchmark:
        bench_path("image_cache")
    conda:
        CONDA_ENV
    shell:
        "medfuse-bench image-cache --cxr-uni {input.cxr_uni} --mimic-cxr {input.images} --size {params.size}"
        " --samples {input.samples} --cxr-metadata {input.raw}/cxr_metadata.parquet"
        " --out-dir {params.out_dir} --workers {threads} {params.skip} > {log} 2>&1"


# Over 20 lines: the training budget and settings come from the config as flags (one param each, so a changed
# value reruns the job), and threads, GPU and runtime reach the scheduler.
rule train:
    """Train one learning-rate draw of one experiment; a killed job resumes from its last epoch. Its checkpoint is
    temporary: `select` copies the chosen draw's, and the others are deleted then (`snakemake --notemp` keeps them)."""

    # Over 20 lines: a training run takes the experiment's budget, initialisation, images and policy settings.
    input:
        unpack(train_job_inputs),
    output:
        checkpoint=temp(str(WD.run_checkpoint("{task}", "{experiment}", "{draw}"))),
        result=str(WD.run_result("{task}", "{experiment}", "{draw}")),
        history=str(WD.run_history("{task}", "{experiment}", "{draw}")),
    params:
        tasks_dir=str(WD.tasks_dir),
        cxr_uni=str(WD.cxr_uni),
        image_cache=CACHE,
        out_dir=lambda wc, output: Path(output.result).parent,
        init=init_flags,
        uni_fraction=uni_fraction,
        bf16="--bf16" if TRAIN["bf16"] else "",
        augment="" if IMAGES["augment"] else "--no-augment",
        budget=lambda wc: experiment_budget(wc).cli_args(),
        settings=(
            f"--batch-size {TRAIN['batch_size']}"
            f" --lr-min {TRAIN['lr_min']} --lr-max {TRAIN['lr_max']} --device {TRAIN['device']}"
            f" --crop {IMAGES['crop']} --seed {CFG['seed']} {POLICY.stage_args('train')}"
        ),
    threads: TRAIN["num_threads"]
    resources:
        gpu=GPUS_PER_JOB,
        mem_mb=8000,
        runtime=720,
    log:
        log_path("train/{task}/{experiment}/lr{draw}"),
    benchmark:
        bench_path("train/{task}/{experiment}/lr{draw}")
    conda:
        CONDA_ENV
    shell:
        # The log gets every epoch's scores and the time left (Snakemake shows its path when the job starts);
        # the console gets the run's one-line summary when it ends.
        "medfuse-bench train --tasks-dir {params.tasks_dir} --cxr-uni {params.cxr_uni}"
        " --image-cache {params.image_cache} --task {wildcards.task} --experiment {wildcards.experiment}"
        " --draw {wildcards.draw} --out-dir {params.out_dir} {params.budget} {params.settings}"
        " --uni-fraction {params.uni_fraction}"
        " {params.init} {params.bf16} {params.augment} --threads {threads} --quiet > {log} 2>&1"
        " && tail -n 1 {log} >&2"


rule select:
    """Keep the learning-rate draw with the best validation AUROC: its checkpoint is copied beside selected.json,
    which later steps read."""
    input:
        results=run_results,
        checkpoints=run_checkpoints,
    output:
        selected=selected_path("{task}", "{experiment}"),
        checkpoint=str(WD.selected_checkpoint("{task}", "{experiment}")),
    params:
        runs=lambda wc, input: " ".join(q(Path(p).parent) for p in input.results),
    log:
        log_path("select/{task}/{experiment}"),
    benchmark:
        bench_path("select/{task}/{experiment}")
    conda:
        CONDA_ENV
    shell:
        "medfuse-bench select --runs {params.runs} --out {output.selected} --checkpoint-out {output.checkpoint}"
        " > {log} 2>&1"


# MedFuse (OPTIMAL) chosen on validation (fidelity switch optimal_fraction: sweep_best): the uni-modal sweep point
# with the best validation AUROC stands for medfuse-optimal, which is then not trained on its own. Under paper_fixed,
# `select` picks medfuse-optimal's own runs at train.uni_modal_fraction.
if POLICY.optimal_fraction == "sweep_best":

    # Over 20 lines: indented under the fidelity switch, with MedFuse (PT)'s selection as an optional input.
    rule select_optimal:
        """MedFuse (OPTIMAL) = the sweep point with the best validation AUROC (ties: the smaller fraction)."""
        input:
            unpack(optimal_inputs),
        output:
            selected=selected_path("{task}", OPTIMAL),
            checkpoint=str(WD.selected_checkpoint("{task}", OPTIMAL)),
        params:
            sweep_lr=POLICY.sweep_lr,
            pt=lambda wc, input: f"--pt-selected {q(input.pt)}" if "pt" in input.keys() else "",
        log:
            log_path("select_optimal/{task}"),
        benchmark:
            bench_path("select_optimal/{task}")
        conda:
            CONDA_ENV
        shell:
            "medfuse-bench select-optimal --points {input.points} --out {output.selected} --sweep-lr {params.sweep_lr}"
            " --checkpoint-out {output.checkpoint}"
            " {params.pt} > {log} 2>&1"

    ruleorder: select_optimal > select


# Over 20 lines: its inputs are the training job's (data, image cache, encoders) plus the selection, and threads
# and GPU reach the scheduler.
rule predict:
    """Predictions of the selected model on the test sets of its experiment (paired, partial, paired_nocxr)."""

    # Over 20 lines: the selected checkpoint and every input of the model it restores.
    input:
        unpack(
            lambda wc: {
                "selected": selected_path(wc.task, wc.experiment),
                "checkpoint": str(WD.selected_checkpoint(wc.task, wc.experiment)),
                **train_inputs(wc),
            }
        ),
    output:
        directory(str(WD.predictions_dir("{task}", "{experiment}"))),
    wildcard_constraints:
        experiment=f"(?!{ENSEMBLE}$)[a-z0-9-]+",
    params:
        tasks_dir=str(WD.tasks_dir),
        image_cache=CACHE,
        device=TRAIN["device"],
    threads: TRAIN["num_threads"]
    resources:
        gpu=GPUS_PER_JOB,
        mem_mb=8000,
    log:
        log_path("predict/{task}/{experiment}"),
    benchmark:
        bench_path("predict/{task}/{experiment}")
    conda:
        CONDA_ENV
    shell:
        "medfuse-bench predict --selected {input.selected} --tasks-dir {params.tasks_dir}"
        " --image-cache {params.image_cache} --task {wildcards.task} --experiment {wildcards.experiment}"
        " --out-dir {output} --device {params.device} --threads {threads} > {log} 2>&1"


rule ensemble:
    """Appendix A.7: MedFuse (OPTIMAL) where an X-ray exists, the EHR-only LSTM elsewhere."""
    input:
        fusion=str(WD.predictions_dir("{task}", OPTIMAL)),
        ehr=str(WD.predictions_dir("{task}", "ehr-partial")),
        samples=str(WD.samples("{task}")),
    output:
        directory(str(WD.predictions_dir("{task}", ENSEMBLE))),
    params:
        tasks_dir=lambda wc, input: Path(input.samples).parents[1],  # {tasks_dir}/{task}/samples.parquet
    log:
        log_path(f"predict/{{task}}/{ENSEMBLE}"),
    benchmark:
        bench_path(f"predict/{{task}}/{ENSEMBLE}")
    conda:
        CONDA_ENV
    shell:
        "medfuse-bench ensemble --fusion-dir {input.fusion} --ehr-dir {input.ehr} --tasks-dir {params.tasks_dir}"
        " --task {wildcards.task} --out-dir {output} > {log} 2>&1"


rule models:
    """Every trained experiment of every task, selected on validation, with its test-set predictions."""
    input:
        expand(str(WD.predictions_dir("{task}", "{experiment}")), task=TASK_LIST, experiment=predicted_experiments()),
        expand(selected_path("{task}", "{experiment}"), task=TASK_LIST, experiment=trained_experiments()),
