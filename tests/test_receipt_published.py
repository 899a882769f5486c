"""The published receipt of the default synthetic run (resources/receipts/synthetic-demo.json) is what the
pipeline builds: the ETL targets up to receipt.json run in a temporary directory with the shipped config."""

from __future__ import annotations

from pathlib import Path

import pytest

from medfuse_bench.etl.receipt import receipt_id

from dag_helpers import ROOT, snakemake

PUBLISHED = ROOT / "resources" / "receipts" / "synthetic-demo.json"


@pytest.mark.slow
def test_default_synthetic_run_reproduces_the_published_receipt(tmp_path: Path) -> None:
    proc = snakemake(tmp_path, "--cores", "2", "results/receipt.json")
    assert proc.returncode == 0, proc.stdout[-5000:]
    built = tmp_path / "results" / "receipt.json"
    assert built.read_bytes() == PUBLISHED.read_bytes(), (
        f"receipt {receipt_id(built)[:12]} differs from the published {receipt_id(PUBLISHED)[:12]}; "
        f"`medfuse-bench receipt --compare {PUBLISHED} {built}` says where. If the change is intended (a new "
        "package version, a changed ETL), publish the new receipt: copy it to resources/receipts/synthetic-demo.json"
    )
