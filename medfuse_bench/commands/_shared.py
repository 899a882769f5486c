"""Argument choices shared by the training-side commands."""

from __future__ import annotations

#: --device choices of train, predict and the training benchmark.
DEVICES = ("auto", "cpu", "cuda")
