"""The layout of the pipeline's output folder (``workdir``): one place that names every file a stage writes or
reads. The Snakefile (workflow/rules/common.smk) and the command-line defaults both build their paths here.

Arguments may be wildcards: ``Workdir.at("results").samples("{task}")`` is Snakemake's output pattern.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from medfuse_bench.resources import TASKS

_SWEEP = re.compile(r"^medfuse-p(\d+)$")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Workdir:
    """The file layout of docs/architecture.md, rooted at ``root``."""

    root: Path

    @classmethod
    def at(cls, root: str | os.PathLike[str]) -> Workdir:
        return cls(Path(root))

    # configuration and logs
    @property
    def config_resolved(self) -> Path:
        return self.root / "config.resolved.yaml"

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    def benchmark(self, name: str) -> Path:
        return self.root / "benchmarks" / f"{name}.tsv"

    # ETL
    @property
    def raw(self) -> Path:
        return self.root / "etl" / "raw"

    @property
    def provenance(self) -> Path:
        return self.root / "etl" / "provenance.json"

    @property
    def cxr_uni(self) -> Path:
        return self.root / "cxr" / "cxr_uni.parquet"

    @property
    def tasks_dir(self) -> Path:
        return self.root / "tasks"

    def samples(self, task: str) -> Path:
        return self.tasks_dir / task / "samples.parquet"

    def timeseries_dir(self, task: str, subfolder: str = "") -> Path:
        """Folder of a task's time series; ``subfolder`` names a variant (Experiment.timeseries, e.g. available)."""
        return self.tasks_dir / task / subfolder if subfolder else self.tasks_dir / task

    def timeseries_index(self, task: str, subfolder: str = "") -> Path:
        return self.timeseries_dir(task, subfolder) / "timeseries_index.parquet"

    def timeseries(self, task: str, split: str, subfolder: str = "") -> Path:
        return self.timeseries_dir(task, subfolder) / f"timeseries_{split}.npy"

    def normalizer(self, task: str, subfolder: str = "") -> Path:
        return self.timeseries_dir(task, subfolder) / "normalizer.json"

    def subgroups(self, task: str) -> Path:
        return self.tasks_dir / task / "subgroups.parquet"

    @property
    def summary(self) -> Path:
        return self.tasks_dir / "summary.json"

    @property
    def summary_md(self) -> Path:
        return self.tasks_dir / "summary.md"

    def audit_summary(self, task: str) -> Path:
        return self.root / "audit" / task / "summary.json"

    def audit_html(self, task: str) -> Path:
        return self.root / "audit" / task / "leakage.html"

    # training
    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def cache_array(self) -> Path:
        return self.cache / "images.npy"

    @property
    def cache_index(self) -> Path:
        return self.cache / "images_index.parquet"

    def model_dir(self, task: str, experiment: str) -> Path:
        return self.root / "models" / task / experiment

    def run_dir(self, task: str, experiment: str, draw: int | str) -> Path:
        return self.model_dir(task, experiment) / "runs" / f"lr{draw}"

    def run_result(self, task: str, experiment: str, draw: int | str) -> Path:
        return self.run_dir(task, experiment, draw) / "result.json"

    def run_checkpoint(self, task: str, experiment: str, draw: int | str) -> Path:
        return self.run_dir(task, experiment, draw) / "checkpoint.pt"

    def run_history(self, task: str, experiment: str, draw: int | str) -> Path:
        return self.run_dir(task, experiment, draw) / "history.csv"

    def selected(self, task: str, experiment: str) -> Path:
        return self.model_dir(task, experiment) / "selected.json"

    def selected_checkpoint(self, task: str, experiment: str) -> Path:
        return self.model_dir(task, experiment) / "checkpoint.pt"

    def predictions_dir(self, task: str, experiment: str) -> Path:
        return self.root / "predictions" / task / experiment

    def predictions(self, task: str, experiment: str, test_set: str) -> Path:
        return self.predictions_dir(task, experiment) / f"{test_set}.parquet"

    # train.seeds: experiments of Tables 1-3 retrained with another seed. Their predictions are not under
    # predictions/{task}/{experiment}/, the predict rule's output folder, which Snakemake empties when it reruns.
    def seed_run_dir(self, task: str, experiment: str, seed: int | str) -> Path:
        return self.model_dir(task, experiment) / "seeds" / f"seed{seed}"

    def seed_predictions_dir(self, task: str, experiment: str, seed: int | str) -> Path:
        return self.root / "seed_predictions" / task / experiment / f"seed{seed}"

    def seed_predictions(self, task: str, experiment: str, seed: int | str, test_set: str) -> Path:
        return self.seed_predictions_dir(task, experiment, seed) / f"{test_set}.parquet"

    # evaluation
    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    @property
    def report_md(self) -> Path:
        return self.report_dir / "report.md"

    @property
    def drift_md(self) -> Path:
        return self.root / "drift" / "drift.md"

    @property
    def scores(self) -> Path:
        return self.root / "scores"

    def score_files(self, task: str, test_set: str) -> list[Path]:
        """The scored submissions of a task and test set (written by ``medfuse-bench score``), sorted."""
        return sorted((self.scores / task / test_set).glob("*.json"))

    @property
    def leaderboard(self) -> Path:
        return self.root / "leaderboard"

    def leaderboard_md(self, task: str, test_set: str) -> Path:
        return self.leaderboard / f"{task}_{test_set}.md"

    @property
    def leaderboard_page(self) -> Path:
        return self.leaderboard / "index.html"

    def leaderboard_csv(self, task: str, test_set: str) -> Path:
        return self.leaderboard / f"{task}_{test_set}.csv"

    # what exists
    def tasks_present(self) -> list[str]:
        """Tasks whose samples table exists, in the package's task order."""
        return [t for t in TASKS if self.samples(t).exists()]

    def prediction_experiments(self, task: str, test_set: str) -> list[str]:
        """Experiments with a prediction file for ``test_set``, sorted by name."""
        return sorted(p.parent.name for p in (self.root / "predictions" / task).glob(f"*/{test_set}.parquet"))

    def sweep(self, task: str) -> list[tuple[int, str]]:
        """(percent, experiment) of every ``medfuse-p{N}`` with a selected.json, by percent."""
        found = []
        for path in (self.root / "models" / task).glob("medfuse-p*/selected.json"):
            match = _SWEEP.match(path.parent.name)
            if match:
                found.append((int(match.group(1)), path.parent.name))
        return sorted(found)
