"""Paired bootstrap difference of macro AUROC and AUPRC: the vectorised path against a scikit-learn loop.

``python -m benchmarks.paired`` (defaults: 2,000 stays, 25 labels, 1000 resamples, two models). The loop calls
``roc_auc_score`` and ``average_precision_score`` for both models on every label of every resample, on the same
resample indices; it runs on ``--sklearn-resamples`` of them and its time is scaled linearly to all. Prints both
timings, the speed-up and the largest difference between the two paths' resampled differences.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.metrics import synthetic_scores
from medfuse_bench.evaluation.bootstrap import resample_indices
from medfuse_bench.evaluation.paired import paired_evaluation


def sklearn_paired(y: np.ndarray, a: np.ndarray, b: np.ndarray, indices: np.ndarray) -> dict[str, np.ndarray]:
    """Macro difference ``a - b`` per resample, label by label with scikit-learn (a label undefined in a resample
    keeps its test-set value, as the vectorised macro does)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    fns = {"auroc": roc_auc_score, "auprc": average_precision_score}
    full = {m: [[fn(y[:, j], s[:, j]) for j in range(y.shape[1])] for s in (a, b)] for m, fn in fns.items()}
    out = {m: np.empty(indices.shape[0]) for m in fns}
    for r, idx in enumerate(indices):
        for m, fn in fns.items():
            macro = []
            for k, s in enumerate((a, b)):
                vals = [fn(y[idx, j], s[idx, j]) if 0 < y[idx, j].sum() < idx.size else full[m][k][j]
                        for j in range(y.shape[1])]
                macro.append(np.mean(vals))
            out[m][r] = macro[0] - macro[1]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.paired", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--labels", type=int, default=25)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--sklearn-resamples", type=int, default=100)
    p.add_argument("--seed", type=int, default=2022)
    args = p.parse_args(argv)

    y, a = synthetic_scores(args.n, args.labels, 0.15, args.seed)
    b = np.clip(a + np.random.default_rng(args.seed + 1).normal(0, 0.1, a.shape), 0, 1).round(2)
    labels = [f"label{j}" for j in range(args.labels)]
    start = time.perf_counter()
    paired = paired_evaluation(y, {"a": a, "b": b}, labels, n_resamples=args.bootstrap, seed=args.seed)
    diffs = {m: paired.difference("a", "b", m) for m in ("auroc", "auprc")}
    vectorised_s = time.perf_counter() - start

    k = min(args.sklearn_resamples, args.bootstrap)
    indices = resample_indices(args.n, args.bootstrap, args.seed)[:k]
    start = time.perf_counter()
    reference = sklearn_paired(y, a, b, indices)
    sklearn_s = time.perf_counter() - start
    scaled_s = sklearn_s * args.bootstrap / k
    worst = max(float(np.max(np.abs((paired.macro("a", m)[1] - paired.macro("b", m)[1])[:k] - reference[m])))
                for m in reference)

    print(f"data: n={args.n}, labels={args.labels}, resamples={args.bootstrap}, two models (macro AUROC + AUPRC)")
    print(f"vectorised paired bootstrap: {vectorised_s:8.2f} s")
    print(f"scikit-learn loop:           {scaled_s:8.2f} s (measured {sklearn_s:.2f} s on {k} resamples, scaled)")
    print(f"speed-up:                    {scaled_s / vectorised_s:8.1f}x")
    print(f"max |difference| vs sklearn: {worst:.2e}")
    for m, d in diffs.items():
        print(f"{m}: a - b = {d.value:+.4f} ({d.ci_low:+.4f}, {d.ci_high:+.4f}), p={d.p_value:.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
