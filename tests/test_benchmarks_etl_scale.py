"""The scale benchmark's table: figures of several runs side by side, with the growth exponents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import etl_scale


def _result(path: Path, stays: int, seconds: float, peak: int | None) -> Path:
    path.write_text(json.dumps({
        "stays": stays, "cores": 2, "wall_s": seconds * 3, "machine_check_s": 0.5, "raw_bytes": stays * 10**5,
        "workdir_bytes": stays * 10**4, "cpus": 2,
        "stages": {"ingest": {"s": seconds, "max_rss_mb": peak}, "cohort": {"s": 1.0, "max_rss_mb": 100}},
    }))
    return path


def test_table_fits_the_exponents_over_the_sizes(tmp_path: Path, capsys: pytest.CaptureFixture):
    files = [_result(tmp_path / f"{n}.json", n, s, m) for n, s, m in
             [(4000, 8.0, 400), (1000, 2.0, 400), (2000, 4.0, None)]]
    assert etl_scale.main(["table", *map(str, files)]) == 0
    out = capsys.readouterr().out
    rows = {line.split(" | ")[0].strip("| "): line for line in out.splitlines() if line.startswith("| ")}
    assert "1,000 stays" in rows["stage"].split(" | ")[1]  # sizes in increasing order
    ingest = rows["ingest"].split(" | ")
    assert ingest[1:4] == ["2.0 / 400", "4.0 / n/a", "8.0 / 400"]
    assert ingest[4:] == ["1.00", "0.00 |"]  # time doubles with the stays; memory flat
    assert rows["cohort"].split(" | ")[4] == "0.00"
    assert "**`etl` target, wall**" in out and "0.40 GB" in out


def test_stage_figures_read_the_rules_benchmark_files(tmp_path: Path):
    (tmp_path / "benchmarks").mkdir()
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    (tmp_path / "benchmarks" / "ingest.tsv").write_text(header + "12.34\t0:00:12\t410.5\t1\t1\t1\t1\t1\t1\t1\n")
    (tmp_path / "benchmarks" / "cohort.tsv").write_text(header + "0.2\t0:00:00\tNA\tNA\tNA\tNA\tNA\tNA\t0\t0\n")
    assert etl_scale.stage_figures(tmp_path) == {"cohort": {"s": 0.2, "max_rss_mb": None},
                                                  "ingest": {"s": 12.3, "max_rss_mb": 410}}
