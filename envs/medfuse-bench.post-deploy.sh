#!/usr/bin/env bash
# Run by `snakemake --use-conda` inside the freshly created environment, from the workflow's working
# directory (the repository root): installs the medfuse_bench package that the rules call.
set -euo pipefail
python -m pip install --no-deps -e .
