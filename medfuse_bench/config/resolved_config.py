"""Rule ``resolved_config``: the validated configuration, scale values and ``--config`` overrides filled in,
written next to the results (``{workdir}/config.resolved.yaml``).

The rule has no subcommand of its own: the configuration it writes is the one Snakemake resolved, overrides on its
command line included, which only Snakemake's process holds; so the rule calls :func:`write_resolved_config` in that
process. ``medfuse-bench config --out`` writes a config file's resolution the same way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import yaml

from medfuse_bench.io import write_text


def write_resolved_config(resolved: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``resolved`` as YAML in its key order."""
    write_text(yaml.safe_dump(dict(resolved), sort_keys=False), path)
