"""Running the workflow in a temporary directory: the checkout is never Snakemake's working directory, so its
.snakemake/ metadata, locks and outputs all land under the test's tmp_path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "workflow" / "Snakefile"
#: The test configuration (synthetic data, scale smoke), given with --configfile after config.yaml.
TEST_CONFIG = ROOT / ".test" / "config.yaml"


def snakemake(workdir: Path, *args: str, config: dict[str, object] | None = None,
              configfiles: tuple[Path, ...] = ()) -> subprocess.CompletedProcess[str]:
    """``snakemake --directory workdir ARGS [--configfile ...] [--config k=v ...]`` with this checkout's package first
    on the path (the shell rules' ``medfuse-bench`` then runs this code); the shipped config.yaml is copied in when
    absent, and ``configfiles`` (e.g. TEST_CONFIG) go over it. stdout and stderr come back together in ``stdout``, in
    the order a person would see them."""
    workdir.mkdir(parents=True, exist_ok=True)
    if not (workdir / "config.yaml").exists():
        shutil.copy(ROOT / "config.yaml", workdir / "config.yaml")
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(workdir), *args]
    if configfiles:
        command += ["--configfile", *map(str, configfiles)]
    if config:
        command += ["--config", *(f"{key}={value}" for key, value in config.items())]
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(command, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def planned_rules(output: str) -> set[str]:
    """Names of the rules a (dry) run lists as jobs."""
    names = set()
    for line in output.splitlines():
        line = line.strip()
        for prefix in ("rule ", "localrule "):
            if line.startswith(prefix) and line.endswith(":"):
                names.add(line[len(prefix):-1])
    return names
