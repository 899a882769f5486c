"""Evaluation: AUROC / AUPRC with bootstrap confidence intervals, computed for all resamples at once."""
