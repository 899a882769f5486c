# The embedded default input: a synthetic dataset in the exact MIMIC-IV / MIMIC-CXR-JPG layouts.


rule synth:
    """Generate the synthetic MIMIC-IV 2.2 + MIMIC-CXR-JPG 2.0.0 dataset (only when mimic_iv_dir is null)."""

    # Over 20 lines: the dataset's size, image size and seed are all settings.
    output:
        iv=directory(f"{W}/synthetic/mimic-iv"),
        cxr=directory(f"{W}/synthetic/mimic-cxr-jpg"),
    params:
        out=lambda wc, output: Path(output.iv).parent,
        stays=CFG["synthetic"]["stays"],
        image_size=CFG["synthetic"]["image_size"],
        seed=CFG["seed"],
    log:
        log_path("synth"),
    benchmark:
        bench_path("synth")
    resources:
        mem_mb=4000,
    conda:
        CONDA_ENV
    shell:
        "medfuse-bench synth --out {params.out} --stays {params.stays} --seed {params.seed}"
        " --image-size {params.image_size} --force > {log} 2>&1"
