"""Measurement harnesses, kept out of the pipeline package: each module that times or counts something runs as
``python -m benchmarks.<name>`` from the repository root; benchmarks/README.md has the commands and the figures."""
