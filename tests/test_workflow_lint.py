"""The workflow passes Snakemake's linter and is formatted as snakefmt formats it (settings: [tool.snakefmt] of
pyproject.toml). Neither check writes into the checkout: Snakemake works in a temporary directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dag_helpers import ROOT, snakemake


def _checkout_state() -> tuple[list[str], list[str]]:
    """The checkout's top-level entries, and everything under a .snakemake/ there (where a run keeps its state)."""
    state = ROOT / ".snakemake"
    below = sorted(str(p.relative_to(ROOT)) for p in state.rglob("*")) if state.exists() else []
    return sorted(p.name for p in ROOT.iterdir()), below


def test_snakemake_lint_finds_nothing(tmp_path: Path) -> None:
    before = _checkout_state()
    proc = snakemake(tmp_path, "--lint")
    assert proc.returncode == 0, proc.stdout
    assert "Lints for" not in proc.stdout, proc.stdout
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout, proc.stdout
    assert _checkout_state() == before


def test_workflow_is_snakefmt_formatted() -> None:
    before = _checkout_state()
    command = [sys.executable, "-m", "snakefmt", "--config", str(ROOT / "pyproject.toml")]
    proc = subprocess.run([*command, "--check", "workflow"], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        diff = subprocess.run([*command, "--compact-diff", "workflow"], cwd=ROOT, capture_output=True, text=True)
        raise AssertionError(f"`snakefmt workflow` would change these lines:\n{diff.stdout}{proc.stderr}")
    assert _checkout_state() == before


def test_rules_over_twenty_lines_say_why() -> None:
    """Rules stay thin: one of more than 20 (non-blank) lines carries a comment saying why ("Over 20 lines: ...")."""
    import re

    long = []
    for path in sorted((ROOT / "workflow").rglob("*.smk")) + [ROOT / "workflow" / "Snakefile"]:
        lines = path.read_text().splitlines()
        for start, line in enumerate(lines):
            match = re.match(r"(?:rule|checkpoint) (\w+):", line)
            if not match:
                continue
            end = start + 1
            while end < len(lines) and (not lines[end].strip() or lines[end].startswith(" ")):
                end += 1
            body = [t for t in lines[start:end] if t.strip()]
            if len(body) > 20 and not any("over 20 lines" in t.lower() for t in body):
                long.append(f"{path.name}: rule {match.group(1)} ({len(body)} lines)")
    assert not long, long
