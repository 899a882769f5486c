"""``medfuse-bench timeseries`` (rules ``timeseries`` and ``timeseries_available``): a task's discretised, imputed,
normalised time series, 76 features per time step, one float32 array per split, with its index and normaliser.

The discretiser's semantics are in :mod:`.discretiser`, the normaliser in :mod:`.normaliser`, and the chunked writing
in :mod:`.timeseries_writer`.
"""

from __future__ import annotations

import argparse
import logging
import time

from medfuse_bench.etl import discretiser, normaliser
from medfuse_bench.etl.stage_io import log_rate, plain, read_parquet, scan_events
from medfuse_bench.etl.timeseries_writer import write_timeseries
from medfuse_bench.fidelity import add_policy_arguments, policy_from_args


log = logging.getLogger(__name__)

def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("timeseries", help="discretised, imputed, normalised 76-feature time series per split",
                       description=plain(f"{discretiser.__doc__}\n{normaliser.__doc__}"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", required=True, help="events.parquet (long cleaned events)")
    p.add_argument("--samples", required=True, help="tasks/<task>/samples.parquet")
    p.add_argument("--out-dir", required=True,
                   help="folder for timeseries_{train,val,test}.npy, timeseries_index.parquet, normalizer.json")
    p.add_argument("--timestep", type=float, default=1.0, help="bin width in hours (etl.timestep_hours; default 1.0)")
    p.add_argument("--chunk-rows", type=int, default=250_000,
                   help="time steps densified at once; bounds memory at about 1 KB per step (default 250000)")
    add_policy_arguments(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    samples = read_parquet(args.samples, "run `medfuse-bench task-tables` first")
    policy = policy_from_args(args)
    write_timeseries(scan_events(args.events), samples, args.out_dir, args.timestep, args.chunk_rows,
                     normalizer=policy.normalizer, window_by=policy.window_by)
    log_rate(log, "timeseries", samples.height, "samples", started)
    return 0
