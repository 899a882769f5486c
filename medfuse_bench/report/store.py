"""Prediction files and their evaluations, each read or computed once per report run.

An absent prediction file (an experiment not trained, e.g. when ``train.models`` names a subset) is not an
error: it yields None and is listed in :attr:`EvaluationStore.missing`, so tables show a missing row.
"""

from __future__ import annotations

import logging

from medfuse_bench.evaluation.metrics import Evaluation, evaluate
from medfuse_bench.evaluation.predictions import Predictions, read_predictions
from medfuse_bench.paths import Workdir
from medfuse_bench.resources import task_labels

logger = logging.getLogger(__name__)


class EvaluationStore:
    """Evaluations of ``predictions/{task}/{experiment}/{test_set}.parquet`` with one bootstrap setting."""

    def __init__(self, workdir: Workdir, n_resamples: int, seed: int) -> None:
        self.workdir = workdir
        self.n_resamples = n_resamples
        self.seed = seed
        self._predictions: dict[tuple[str, str, str], Predictions | None] = {}
        self._evaluations: dict[tuple[str, str, str], Evaluation | None] = {}
        self.missing: set[tuple[str, str, str]] = set()

    def predictions(self, task: str, experiment: str, test_set: str) -> Predictions | None:
        key = (task, experiment, test_set)
        if key not in self._predictions:
            path = self.workdir.predictions(task, experiment, test_set)
            if path.exists():
                self._predictions[key] = read_predictions(path, task_labels(task))
            else:
                self._predictions[key] = None
                self.missing.add(key)
        return self._predictions[key]

    def evaluation(self, task: str, experiment: str, test_set: str) -> Evaluation | None:
        key = (task, experiment, test_set)
        if key not in self._evaluations:
            preds = self.predictions(*key)
            self._evaluations[key] = None if preds is None else self.score(preds)
            if preds is not None:
                logger.info("evaluated %s/%s/%s (n=%d)", *key, preds.stay_id.size)
        return self._evaluations[key]

    def score(self, preds: Predictions, *, micro: bool = True) -> Evaluation:
        """Evaluate any prediction arrays (e.g. a subset) with this store's bootstrap setting."""
        return evaluate(
            preds.y_true, preds.y_score, preds.labels, n_resamples=self.n_resamples, seed=self.seed, micro=micro
        )
