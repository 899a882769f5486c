"""Generate the whole synthetic dataset: population tables first, then events and images chunk by chunk.

Both trees are built in a temporary folder beside the output and renamed into place at the end, so a failed or
interrupted run leaves nothing behind. Every random draw comes from numpy Generators seeded by (seed, stage, chunk),
gzip members carry mtime 0 and JPEGs a fixed quality, so one seed always gives the same bytes.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
from tqdm import tqdm

from medfuse_bench.errors import MedfuseError
from medfuse_bench.io import remove_leftovers, temporary_name
from medfuse_bench.synth.arrays import DAY, HOUR
from medfuse_bench.synth.cxr import build_studies
from medfuse_bench.synth.chart_events import chart_events
from medfuse_bench.synth.events import StayChunk, output_events
from medfuse_bench.synth.lab_events import AdmissionChunk, lab_events
from medfuse_bench.synth.hosp import (
    admissions_table,
    diagnoses_table,
    patients_table,
    provider_ids,
    transfers_and_stays,
)
from medfuse_bench.synth.icd import code_pools
from medfuse_bench.synth.images import render, write_jpeg
from medfuse_bench.synth.items import d_items, d_labitems
from medfuse_bench.synth.plan import Population, assign_ids, build_population
from medfuse_bench.synth.release import ADDED_ID_START, Release, merge_by_subject, next_release
from medfuse_bench.synth.schema import MIMIC_CXR_DIR, MIMIC_IV_DIR, table_columns
from medfuse_bench.synth.signal import draw_latents
from medfuse_bench.synth.versions import DEFAULT_VERSION, adapt, check_version, version_columns, version_path
from medfuse_bench.synth.writer import CsvGzWriter, write_table

log = logging.getLogger(__name__)

#: ICU stays per chunk of event generation (bounds the memory of the event tables).
CHUNK_STAYS = 500


def generate(
    out_dir: str | os.PathLike[str],
    stays: int,
    seed: int,
    image_size: int = 48,
    force: bool = False,
    *,
    progress: bool = True,
    chunk_stays: int = CHUNK_STAYS,
    unrelated_chart_share: float | None = None,
    unrelated_lab_share: float | None = None,
    gzip_level: int = 6,
    mimic_version: str = DEFAULT_VERSION,
    release: Release = Release(),
) -> dict[str, int]:
    """Write ``out_dir/mimic-iv`` and ``out_dir/mimic-cxr-jpg`` with ``stays`` ICU stays; return row/file counts.

    ``mimic_version`` picks the MIMIC-IV layout and schema (:mod:`~medfuse_bench.synth.versions`); ``release``
    makes a later release of the same world (:mod:`~medfuse_bench.synth.release`): the patients of
    ``(stays, seed)`` with the same identifiers and times, plus new ones, minus a few.

    ``chunk_stays`` sets how many stays' events are held in memory at once (the output depends on it, like on the
    seed). Raises :class:`MedfuseError` for a bad size, an unwritable ``out_dir`` or an existing non-empty output
    tree (unless ``force``, which replaces it). ``unrelated_chart_share`` adds chartevents rows of items outside
    the 17 variables until they make that share of the table (MIMIC's composition is about 0.82; default: none
    added, about 0.05); ``unrelated_lab_share`` does the same for labevents (MIMIC-IV 3.1's 158 M rows for 94,458
    ICU stays: about 0.965). ``gzip_level`` trades the event tables' size for the time to write them, where
    compression is most of the generator's time (benchmarks/README.md).
    """
    if not isinstance(stays, (int, np.integer)) or stays <= 0:
        raise MedfuseError(f"--stays must be a positive number of ICU stays, got {stays}")
    if not isinstance(image_size, (int, np.integer)) or image_size <= 0:
        raise MedfuseError(f"--image-size must be a positive width in pixels, got {image_size}")
    if chunk_stays <= 0:
        raise MedfuseError(f"chunk_stays must be positive, got {chunk_stays}")
    if unrelated_chart_share is not None and not 0.0 <= unrelated_chart_share < 1.0:
        raise MedfuseError(f"--unrelated-chart-share must be in [0, 1), got {unrelated_chart_share}")
    if unrelated_lab_share is not None and not 0.0 <= unrelated_lab_share < 1.0:
        raise MedfuseError(f"--unrelated-lab-share must be in [0, 1), got {unrelated_lab_share}")
    if gzip_level not in range(1, 10):
        raise MedfuseError(f"--gzip-level must be 1 to 9, got {gzip_level}")
    check_version(mimic_version)
    stays, image_size = int(stays), int(image_size)
    out = Path(out_dir)
    targets = [out / MIMIC_IV_DIR, out / MIMIC_CXR_DIR]
    if not force:
        for target in targets:
            if target.exists() and (not target.is_dir() or any(target.iterdir())):
                raise MedfuseError(f"{target} already exists and is not empty; remove it or pass --force")
    try:
        out.mkdir(parents=True, exist_ok=True)
        # A fixed name, so that the leftover of a killed run is removed here rather than kept beside the new one.
        remove_leftovers(out / "synth", directory=True)
        tmp = temporary_name(out / "synth", directory=True)  # out/.synth.tmp
        tmp.mkdir()
    except OSError as exc:
        raise MedfuseError(f"cannot write to output directory {out}: {exc.strerror or exc}; choose another --out")
    try:
        counts = _generate_into(tmp, stays, seed, image_size, progress, chunk_stays,
                                (unrelated_chart_share, unrelated_lab_share), mimic_version, release, gzip_level)
        for target in targets:
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(tmp / target.name, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("synthetic dataset in %s: %s", out, ", ".join(f"{k} {v}" for k, v in counts.items()))
    return counts


def _chunks(pop: Population, chunk_stays: int) -> list[tuple[int, int]]:
    """Patient ranges holding about ``chunk_stays`` stays each."""
    n_pat = len(pop.patient["pidx"])
    per_patient = np.bincount(pop.stay["pidx"], minlength=n_pat)
    cum = np.cumsum(per_patient)
    cuts = np.searchsorted(cum, np.arange(chunk_stays, cum[-1], chunk_stays), side="left") + 1
    edges = np.unique(np.concatenate([[0], cuts, [n_pat]]))
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _generate_into(root: Path, stays: int, seed: int, image_size: int, progress: bool, chunk_stays: int,
                   unrelated: tuple[float | None, float | None] = (None, None), version: str = DEFAULT_VERSION,
                   release: Release = Release(), gzip_level: int = 6) -> dict[str, int]:
    rng = np.random.default_rng([seed, 0])
    pop = build_population(rng, stays)
    assign_ids(rng, pop)
    pools = code_pools()
    transfers, icustays = transfers_and_stays(rng, pop)
    diagnoses = diagnoses_table(rng, pop, pools)
    studies = build_studies(rng, pop, image_size)
    meta = studies["metadata"]

    counts: dict[str, int] = {}
    small = {
        "patients": patients_table(pop),
        "admissions": admissions_table(rng, pop),
        "transfers": transfers,
        "diagnoses_icd": diagnoses,
        "d_icd_diagnoses": pools.titles,
        "d_labitems": d_labitems(),
        "icustays": icustays,
        "d_items": d_items(),
        "cxr_metadata": meta,
        "cxr_chexpert": studies["chexpert"],
        "cxr_split": studies["split"],
    }
    later = None if release.is_base else next_release(seed, release, pop, transfers, pools)
    if later is not None:
        small = later.tables(small)
    deaths = small["admissions"].filter(pl.col("hospital_expire_flag") == 1)["subject_id"]
    for name, frame in small.items():
        frame = adapt(name, frame.select(table_columns(name)), version, in_hospital_deaths=deaths)
        counts[name] = write_table(frame, root / version_path(name, version), version_columns(name, version))

    providers = provider_ids(rng, 600)
    specimen_start = int(rng.integers(1_000_000, 2_000_000))
    images = _Images(root / MIMIC_CXR_DIR, seed, meta, studies["findings"], image_size)
    streams = [_event_chunks(pop, seed, 1, chunk_stays, providers, 1, specimen_start, unrelated, images, progress)]
    if later is not None and later.added is not None:
        streams.append(_event_chunks(later.added, seed, 4, chunk_stays, providers, ADDED_ID_START, ADDED_ID_START,
                                     unrelated, None, False))

    writers = {name: CsvGzWriter(root / version_path(name, version), version_columns(name, version),
                                 level=gzip_level)
               for name in ("chartevents", "outputevents", "labevents")}
    try:
        for frames in merge_by_subject(streams):
            for name, frame in frames.items():
                if later is not None:
                    frame = later.keep(frame)
                writers[name].write(adapt(name, frame, version))
        for name, writer in writers.items():
            writer.close()
            counts[name] = writer.rows
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    counts["images"] = meta.height
    counts["studies"] = studies["chexpert"].height
    return counts


class _Images:
    """Renders and writes the JPEGs of a chunk's patients (version A's world only: MIMIC-CXR-JPG is one release)."""

    def __init__(self, root: Path, seed: int, meta: pl.DataFrame, findings: np.ndarray, image_size: int) -> None:
        self.root, self.seed, self.image_size = root, seed, image_size
        self.pidx = meta["pidx"].to_numpy()
        self.findings = findings[meta["study_row"].to_numpy()]
        self.views = meta["view_code"].to_numpy()
        self.rel = meta["path"].to_list()

    def write(self, ci: int, p0: int, p1: int) -> None:
        m0, m1 = np.searchsorted(self.pidx, [p0, p1])
        if m1 <= m0:
            return
        pixels = render(np.random.default_rng([self.seed, 2, ci]), self.findings[m0:m1], self.views[m0:m1],
                        self.image_size)
        made = None
        for k in range(m1 - m0):
            path = self.root / self.rel[m0 + k]
            if path.parent != made:  # images of a study are consecutive
                path.parent.mkdir(parents=True, exist_ok=True)
                made = path.parent
            write_jpeg(pixels[k], path)


def _event_chunks(pop: Population, seed: int, stream: int, chunk_stays: int, providers: np.ndarray,
                  labevent_id: int, specimen_next: int, unrelated: tuple[float | None, float | None],
                  images: _Images | None,
                  progress: bool) -> Iterator[tuple[int, dict[str, pl.DataFrame]]]:
    """Event tables of ``pop``, chunk by chunk: (last subject_id of the chunk, {table: frame}), in subject order.

    Chunk ``ci`` draws from stream ``(seed, stream, ci)``; lab rows are numbered from ``labevent_id`` and their
    specimens from ``specimen_next`` on. ``unrelated`` holds the shares of unrelated chart and lab rows (None: none
    added). ``images`` (when given) writes the chunk's JPEGs as it goes.
    """
    chunk_list = _chunks(pop, chunk_stays)
    for ci, (p0, p1) in enumerate(tqdm(chunk_list, desc="synth chunks", unit="chunk", disable=not progress)):
        crng = np.random.default_rng([seed, stream, ci])
        s0, s1 = np.searchsorted(pop.stay["pidx"], [p0, p1])
        a0, a1 = np.searchsorted(pop.adm["pidx"], [p0, p1])
        chunk = _stay_chunk(pop, s0, s1)
        frames = {}
        if s1 > s0:
            frames["chartevents"] = chart_events(crng, chunk, unrelated[0])
            frames["outputevents"] = output_events(crng, chunk)
        labs = lab_events(crng, _admission_chunk(crng, pop, p0, p1, a0, a1, s0, s1), chunk.lat, providers,
                          unrelated[1])
        if labs is not None:
            n_spec = int(labs["specimen"].max()) + 1
            spec_ids = specimen_next + np.cumsum(crng.integers(1, 400, n_spec))
            specimen_next = int(spec_ids[-1])
            labs = labs.with_columns(
                labevent_id=pl.int_range(labevent_id, labevent_id + pl.len(), dtype=pl.Int64),
                specimen_id=pl.Series(spec_ids[labs["specimen"].to_numpy()], dtype=pl.Int64),
            )
            labevent_id += labs.height
            frames["labevents"] = labs.select(table_columns("labevents"))
        if images is not None:
            images.write(ci, p0, p1)
        yield int(pop.patient["subject_id"][p1 - 1]), frames


def _stay_chunk(pop: Population, s0: int, s1: int) -> StayChunk:
    s = pop.stay
    sl = slice(s0, s1)
    return StayChunk(
        subject_id=s["subject_id"][sl],
        hadm_id=s["hadm_id"][sl],
        stay_id=s["stay_id"][sl],
        intime=s["intime"][sl],
        los_h=(s["outtime"][sl] - s["intime"][sl]) / HOUR,
        drift=s["drift"][sl],
        weight=pop.patient["weight"][s["pidx"][sl]],
        height=pop.patient["height"][s["pidx"][sl]],
        lat={k: v[sl] for k, v in pop.stay_lat.items()},
    )


def _admission_chunk(rng: np.random.Generator, pop: Population, p0: int, p1: int, a0: int, a1: int, s0: int,
                     s1: int) -> AdmissionChunk:
    """Lab draw windows: each admission of the chunk, plus outpatient windows for about a third of its patients."""
    a, p = pop.adm, pop.patient
    pat = np.arange(p0, p1)
    outpatient = pat[rng.random(len(pat)) < 0.35]
    first_adm = np.searchsorted(a["pidx"], outpatient)
    has_adm = p["n_adm"][outpatient] > 0
    anchor = np.where(has_adm, a["admittime"][np.minimum(first_adm, len(a["pidx"]) - 1)] - 90 * DAY,
                      p["start"][outpatient])
    out_lat = draw_latents(rng, p["anchor_age"][outpatient].astype(float), icu=False)
    lat = {k: np.concatenate([v[a0:a1], out_lat[k]]) for k, v in pop.adm_lat.items()}
    s_adm = pop.stay["aidx"][s0:s1] - a0
    return AdmissionChunk(
        subject_id=np.concatenate([a["subject_id"][a0:a1], p["subject_id"][outpatient]]),
        hadm_id=np.concatenate([a["hadm_id"][a0:a1], np.full(len(outpatient), -1)]),
        start=np.concatenate([a["admittime"][a0:a1], anchor]),
        end=np.concatenate([a["dischtime"][a0:a1], anchor + 85 * DAY]),
        interval_h=np.concatenate([np.where(a["icu"][a0:a1], 12.0, 24.0), np.full(len(outpatient), 30.0 * 24)]),
        lat=lat,
        stay_lookup=(s_adm, pop.stay["intime"][s0:s1], np.arange(s1 - s0)),
    )

