"""Snakemake's own HTML report (`snakemake --report report.html`): which outputs are flagged for it, with which
category and caption."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dag_helpers import ROOT, TEST_CONFIG

SCRIPT = """
import json
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.io import is_flagged
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings
with SnakemakeApi(OutputSettings(quiet=True)) as api:
    workflow = api.workflow(
        resource_settings=ResourceSettings(), storage_settings=StorageSettings(),
        config_settings=ConfigSettings(configfiles=[Path({config!r}), Path({test_config!r})],
                                       config={{"workdir": {workdir!r}}}),
        snakefile=Path({snakefile!r}), workdir=Path({tmp!r}))._workflow
    flagged = {{}}
    for rule in workflow.rules:
        for f in rule.output:
            if is_flagged(f, "report"):
                obj = f.flags["report"]
                flagged[str(f)] = {{"rule": rule.name, "category": obj.category, "patterns": obj.patterns,
                                    "caption": str(obj.caption.get_path_or_uri(secret_free=True)) if obj.caption else None}}
    print(json.dumps({{"flagged": flagged, "description": str(workflow.report_text.get_path_or_uri(secret_free=True))}}))
"""


def test_tables_figures_leaderboard_page_and_receipt_are_flagged(tmp_path: Path) -> None:
    work = tmp_path / "w"
    script = SCRIPT.format(config=str(ROOT / "config.yaml"), test_config=str(TEST_CONFIG), workdir=str(work),
                           snakefile=str(ROOT / "workflow" / "Snakefile"), tmp=str(tmp_path))
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": path})
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    flagged = found["flagged"]
    assert flagged[f"{work}/report"]["rule"] == "report"
    assert flagged[f"{work}/report"]["patterns"] == ["{name}.png", "{name}.csv"]
    assert flagged[f"{work}/leaderboard/index.html"]["category"] == "Leaderboard"
    assert flagged[f"{work}/receipt.json"]["rule"] == "receipt"
    for entry in flagged.values():
        caption = Path(entry["caption"]).resolve()
        assert caption.parent == ROOT / "workflow" / "report" and caption.suffix == ".rst" and caption.exists()
    assert Path(found["description"]).resolve() == ROOT / "workflow" / "report" / "workflow.rst"
