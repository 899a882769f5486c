"""The install paths agree: CI runs the README's test command, and the lock, the conda environment and
pyproject.toml name the same versions."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _lock() -> dict[str, tuple[str, str]]:
    """Canonical name -> (pinned version, the whole line) of requirements-lock.txt."""
    pins = {}
    for line in (ROOT / "requirements-lock.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(req.name)] = (spec.version, line)
    return pins


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"Run the tests[^\n]*:\n\n {4}(.+)\n", readme).group(1)
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == command


def test_lock_pins_every_dependency_within_pyproject_ranges():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = _lock()
    assert "medfuse-bench" not in lock
    for line in [*project["dependencies"], *project["optional-dependencies"]["test"]]:
        req = Requirement(line)
        version, _ = lock[canonicalize_name(req.name)]
        assert req.specifier.contains(version, prereleases=True), (line, version)


def test_conda_environment_holds_the_lock():
    env = yaml.safe_load((ROOT / "envs" / "medfuse-bench.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert sorted(pip) == sorted(line for _, line in _lock().values())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert python.removeprefix("python=") in (ROOT / "requirements-lock.txt").read_text().splitlines()[0]
