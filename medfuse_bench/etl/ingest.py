"""``medfuse-bench ingest`` (rule ``ingest``): convert the raw MIMIC-IV and MIMIC-CXR-JPG tables the ETL needs to
Parquet and write a provenance record.

Each table goes through :mod:`.table_conversion` (event tables filtered to the item ids of the 17 variables). The
whole output folder is written beside its final name and renamed at the end, so a failed ingest leaves nothing.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from tqdm import tqdm

from medfuse_bench.etl.stage_io import log_rate
from medfuse_bench import __version__
from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl.cxr import check_study_times
from medfuse_bench.etl.layout import MIMIC_CXR_TABLES, MIMIC_IV_TABLES, TableSpec, detect_layout, locate_cxr_tables, \
    read_header, resolve_columns
from medfuse_bench.etl.phenotype_codes import check_icd_versions
from medfuse_bench.etl.table_conversion import _connect, check_icustays, convert_filtered, convert_table, event_itemids
from medfuse_bench.io import atomic_path, write_json

log = logging.getLogger(__name__)

#: Version of the provenance record's layout.
PROVENANCE_FORMAT = 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest",
        help="convert the needed MIMIC-IV and MIMIC-CXR-JPG tables to Parquet (events filtered to the 17 variables)",
        description="Detect the MIMIC-IV layout (1.0: core/ + ethnicity; 2.x/3.x: hosp/ + race; .csv or .csv.gz), "
        "convert the tables the ETL needs to Parquet with DuckDB, and write a provenance record.",
    )
    p.add_argument("--mimic-iv", required=True, help="root of the MIMIC-IV download (holds hosp/ and icu/, or core/)")
    p.add_argument("--mimic-cxr", required=True,
                   help="root of the MIMIC-CXR-JPG 2.0.0 download (holds mimic-cxr-2.0.0-*.csv(.gz))")
    p.add_argument("--out-dir", required=True, help="output folder for {table}.parquet ({workdir}/etl/raw)")
    p.add_argument("--provenance", required=True,
                   help="output JSON: detected layout and version, input files and sizes, row counts")
    p.add_argument("--memory-limit", default="4GB",
                   help="DuckDB memory limit; larger intermediate data spills to disk (default: 4GB)")
    p.add_argument("--threads", type=int, default=None,
                   help="DuckDB threads (default: all cores); Polars, which reads the event tables, takes "
                        "POLARS_MAX_THREADS from the environment")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    provenance = ingest(args.mimic_iv, args.mimic_cxr, args.out_dir, args.provenance, memory_limit=args.memory_limit,
                        threads=args.threads)
    log_rate(log, "ingest", sum(t["rows"] for t in provenance["outputs"].values()), "rows written", started)
    return 0




def ingest(
    mimic_iv_dir: str | Path,
    mimic_cxr_dir: str | Path | None,
    out_dir: str | Path,
    provenance_path: str | Path | None = None,
    *,
    memory_limit: str = "4GB",
    threads: int | None = None,
) -> dict[str, Any]:
    """Convert the needed raw tables to ``out_dir/{table}.parquet``; return (and write) the provenance record.

    The raw tables serve every fidelity policy (the item ids of both capillary refill switch values are kept), so
    ingest takes none: changing a switch never re-ingests.
    """
    layout = detect_layout(mimic_iv_dir)
    jobs: list[tuple[TableSpec, Path]] = [(s, layout.files[s.name]) for s in MIMIC_IV_TABLES if s.name in layout.files]
    if mimic_cxr_dir is not None:
        cxr_files = locate_cxr_tables(mimic_cxr_dir)
        jobs += [(s, cxr_files[s.name]) for s in MIMIC_CXR_TABLES]
    # Check every header before the long scans start, so a missing column fails in seconds.
    for spec, path in jobs:
        resolve_columns(spec, read_header(path), path)

    itemids = event_itemids()
    outputs: dict[str, Any] = {}
    inputs: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    out_dir = Path(out_dir)
    with atomic_path(out_dir, directory=True) as tmp:
        temp_dir = tmp / ".duckdb-spill"
        con = _connect(memory_limit, threads, temp_dir)
        try:
            for spec, path in tqdm(jobs, desc="ingest", unit="table"):
                start = time.perf_counter()
                out = tmp / f"{spec.name}.parquet"
                if spec.filtered:
                    info = convert_filtered(con, spec, path, out, itemids[spec.name])
                else:
                    info = convert_table(con, spec, path, out)
                seconds[spec.name] = round(time.perf_counter() - start, 3)
                log.info("%s: %d rows from %s in %.1f s", spec.name, info["rows"], path, seconds[spec.name])
                if spec.name == "icustays":
                    check_icustays(con, out, path)
                if spec.name == "diagnoses_icd":
                    check_icd_versions(pl.scan_parquet(out), f"'{path}'")
                if spec.name == "cxr_metadata":
                    check_study_times(pl.scan_parquet(out), f"'{path}'")
                if spec.name == "chartevents" and info["rows"] == 0:
                    raise MedfuseError(
                        f"'{path}': no rows left after keeping the item ids of the 17 variables "
                        f"(column 'itemid', e.g. {', '.join(map(str, itemids['chartevents'][:3]))}); "
                        "is this the MIMIC-IV chartevents table?"
                    )
                inputs[spec.name] = {"path": str(path.resolve()), "bytes": path.stat().st_size}
                outputs[spec.name] = {
                    "file": out.name,
                    "rows": info["rows"],
                    "columns_from": info["columns_from"],
                    "absent_optional_columns": info["absent"],
                    "reader": info["reader"],
                }
        finally:
            con.close()
            shutil.rmtree(temp_dir, ignore_errors=True)

    provenance = {
        "format": PROVENANCE_FORMAT,
        "package_version": __version__,
        "duckdb_version": duckdb.__version__,
        "polars_version": pl.__version__,
        "mimic_iv": {"root": str(layout.root.resolve()), "layout": layout.layout, "version": layout.version,
                     "race_column": outputs["admissions"]["columns_from"]["race"]},
        "mimic_cxr": {"root": str(Path(mimic_cxr_dir).resolve())} if mimic_cxr_dir is not None else None,
        "event_itemids": itemids,
        "settings": {"memory_limit": memory_limit, "threads": threads},
        "inputs": inputs,
        "outputs": outputs,
        "seconds": seconds,
    }
    if provenance_path is not None:
        write_json(provenance, provenance_path)
    return provenance
