"""Training throughput per model family, and whether the batch loader keeps up (``python -m benchmarks.train``).

For each family a representative training set of the task is loaded and a few training steps are timed,
split into data (collate + transfer + image augmentation on the device), forward, backward and optimizer.
The loader alone is timed over the same number of batches. The loader/model ratio is loader batches per
second over model steps per second (forward + backward + optimizer); it should be well above 1 (>= 5) so
that the data never holds the accelerator back.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from medfuse_bench.commands._shared import DEVICES
from medfuse_bench.errors import MedfuseError
from medfuse_bench.fidelity import FidelityPolicy, add_policy_arguments, policy_from_args
from medfuse_bench.io import write_json
from medfuse_bench.train.augment import ImageTransform
from medfuse_bench.train.batches import BatchLoader
from medfuse_bench.train.data import SampleSet, load_task_data
from medfuse_bench.train.experiments import get_experiment, labels_of, resolve_uni_fraction
from medfuse_bench.train.loop import model_inputs, resolve_device, seed_everything
from medfuse_bench.train.run import model_options, sets_for

log = logging.getLogger(__name__)

#: The experiment whose training set and options stand for each family.
REPRESENTATIVE: dict[str, str] = {
    "ehr_lstm": "ehr-partial",
    "cxr_resnet": "cxr-paired",
    "early": "early-partial",
    "joint": "joint-paired",
    "mmtm": "mmtm",
    "daft": "daft",
    "unified": "unified",
    "medfuse": "medfuse-ri",
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _batches(loader: BatchLoader) -> Iterator[dict[str, torch.Tensor]]:
    epoch = 1
    while True:
        yield from loader.epoch(epoch)
        epoch += 1


def time_loader(loader: BatchLoader, transform: ImageTransform | None, device: torch.device, steps: int) -> dict[str, float]:
    """Batches/s and samples/s of the loader alone (collate, transfer, image augmentation)."""
    generator = torch.Generator().manual_seed(0)
    batches = _batches(loader)
    model_inputs(next(batches), transform, device, generator)  # warm-up
    _sync(device)
    started, samples = time.perf_counter(), 0
    for _ in range(steps):
        batch = next(batches)
        model_inputs(batch, transform, device, generator)
        samples += batch["labels"].shape[0]
    _sync(device)
    seconds = time.perf_counter() - started
    return {"loader_batches_per_s": steps / seconds, "loader_samples_per_s": samples / seconds}


def time_training(model: torch.nn.Module, loader: BatchLoader, transform: ImageTransform | None,
                  device: torch.device, steps: int, *, bf16: bool = False, warmup: int = 2) -> dict[str, float]:
    """Seconds per phase over ``steps`` training steps (after ``warmup``), and samples/s."""
    loss_fn = model.training_loss
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    model.train()
    phases = {"data": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    batches = _batches(loader)
    samples = 0
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda")
    for index in range(warmup + steps):
        counted = index >= warmup
        _sync(device)
        t0 = time.perf_counter()
        batch = next(batches)
        inputs = model_inputs(batch, transform, device, generator)
        targets = batch["labels"].to(device)
        _sync(device)
        t1 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            outputs = model(inputs)
        loss = loss_fn(outputs, targets, inputs["has_cxr"])
        _sync(device)
        t2 = time.perf_counter()
        loss.backward()
        _sync(device)
        t3 = time.perf_counter()
        optimizer.step()
        _sync(device)
        t4 = time.perf_counter()
        if counted:
            samples += targets.shape[0]
            for name, seconds in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                phases[name] += seconds
    total = sum(phases.values())
    compute = total - phases["data"]
    return {
        "train_samples_per_s": samples / total,
        "model_steps_per_s": steps / compute,
        **{f"{name}_s_per_step": seconds / steps for name, seconds in phases.items()},
    }


def bench_training(
    tasks_dir: str | os.PathLike[str],
    image_cache: str | os.PathLike[str],
    task: str,
    *,
    families: list[str] | None = None,
    steps: int = 20,
    device: str = "auto",
    batch_size: int = 16,
    crop: int | None = None,
    bf16: bool = False,
    threads: int | None = None,
    policy: FidelityPolicy | None = None,
    out: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Time every family's training on ``task``; print a table, write JSON to ``out`` when given."""
    from medfuse_bench.models import build_model

    policy = policy or FidelityPolicy.preset("corrected")
    if threads:
        torch.set_num_threads(threads)
    run_device = resolve_device(device)
    labels = labels_of(task)
    data = load_task_data(tasks_dir, task, labels, image_cache)
    report: dict[str, Any] = {"task": task, "device": str(run_device), "threads": torch.get_num_threads(),
                              "batch_size": batch_size, "steps": steps, "bf16": bf16, "families": {}}
    for family in families or list(REPRESENTATIVE):
        spec = get_experiment(REPRESENTATIVE[family], task)
        train_set: SampleSet = sets_for(spec, data, "train", fraction=resolve_uni_fraction(spec, 1.0),
                                        policy=policy, seed=0, training=True)
        side = None if train_set.images is None else int(train_set.images.shape[1])
        transform = None if side is None else ImageTransform(crop or side, train=True)
        report["crop"] = crop or side or report.get("crop")
        loader = BatchLoader(train_set, batch_size, shuffle=True, drop_last=True, seed=0)
        seed_everything(0)
        model = build_model(family, len(labels), **model_options(spec, task, policy, None)).to(run_device)
        log.info("timing %s (%s, %d samples)", family, spec.name, len(train_set))
        row = {"experiment": spec.name, **time_loader(loader, transform, run_device, steps),
               **time_training(model, loader, transform, run_device, steps, bf16=bf16)}
        row["loader_to_model_ratio"] = row["loader_batches_per_s"] / row["model_steps_per_s"]
        report["families"][family] = row
        del model
    print(format_table(report))
    if out is not None:
        write_json(report, Path(out))
    return report


def format_table(report: dict[str, Any]) -> str:
    """A Markdown table of the benchmark."""
    head = ("| family | train samples/s | model steps/s | loader batches/s | loader samples/s | loader/model "
            "| data s | forward s | backward s | optimizer s |")
    lines = [f"Training throughput on {report['device']} (threads {report['threads']}, batch {report['batch_size']}, "
             f"crop {report.get('crop')}, per-step seconds)", "", head, "|" + "---|" * 10]
    for family, r in report["families"].items():
        lines.append(
            f"| {family} | {r['train_samples_per_s']:.1f} | {r['model_steps_per_s']:.2f} | {r['loader_batches_per_s']:.1f} "
            f"| {r['loader_samples_per_s']:.0f} | {r['loader_to_model_ratio']:.1f} | {r['data_s_per_step']:.4f} "
            f"| {r['forward_s_per_step']:.4f} | {r['backward_s_per_step']:.4f} | {r['optimizer_s_per_step']:.4f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.train``: the table on stdout, JSON with --out; a bad flag is one error line."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.train",
        description="Time a few training steps of every model family (data / forward / backward / optimizer) and "
                    "the batch loader alone; print a table and optionally write JSON.",
    )
    p.add_argument("--tasks-dir", required=True, type=Path, help="{workdir}/tasks")
    p.add_argument("--image-cache", required=True, type=Path, help="{workdir}/cache")
    p.add_argument("--task", required=True, help="in-hospital-mortality or phenotyping")
    p.add_argument("--models", nargs="+", default=None, help="model families (default: all eight)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per family (default 20)")
    p.add_argument("--device", choices=DEVICES, default="auto", help="auto = CUDA when available")
    p.add_argument("--batch-size", type=int, default=16, help="mini-batch size (default 16)")
    p.add_argument("--crop", type=int, default=None, help="crop side (default: the cache side)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast on CUDA")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    add_policy_arguments(p)
    p.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        unknown = sorted(set(args.models or []) - set(REPRESENTATIVE))
        if unknown:
            raise MedfuseError(f"--models: unknown famil(ies) {unknown}; use {', '.join(REPRESENTATIVE)}")
        if args.steps < 1:
            raise MedfuseError(f"--steps must be at least 1, got {args.steps}")
        bench_training(args.tasks_dir, args.image_cache, args.task, families=args.models, steps=args.steps,
                       device=args.device, batch_size=args.batch_size, crop=args.crop, bf16=args.bf16,
                       threads=args.threads, policy=policy_from_args(args), out=args.out)
    except MedfuseError as exc:
        print(f"{p.prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
