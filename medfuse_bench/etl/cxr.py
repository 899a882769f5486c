"""Chest X-rays: the study time of each image, the last X-ray of each ICU stay, and the uni-modal set CXR_UNI.

Linking (as the original's ``loadmetadata``, with the 48 h window done right): for each stay, among the images of
the patient with an allowed ViewPosition and ``intime <= study_datetime <= window end``, take the last one; ties
on study_datetime go to the largest dicom_id so the pick is deterministic. The window end is ``intime + window``
hours, or outtime when the window is None (whole stay).

CXR_UNI: every image with a CheXpert row (all views), labels U-zeros (uncertain -1 and blank -> 0). Its split
follows switch ``cxr_uni_split`` (docs/fidelity.md); either way no image of an EHR val/test patient is in train, so
image pre-training never sees a patient the EHR models are evaluated on:

- ``official`` (corrected): MIMIC-CXR's official split (validate -> val), except that images of EHR val/test
  patients move out of train into that patient's EHR split;
- ``all_train`` (original, its ``create_split.py``): every image in train, then the images of EHR val/test patients
  set to that patient's EHR split; the official split is not used, so the images of patients outside the EHR cohort
  are all in train.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import polars as pl

from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl import exclusions
from medfuse_bench.fidelity import switch
from medfuse_bench.resources import CHEXPERT_LABELS

log = logging.getLogger(__name__)

#: The metadata columns CXR_UNI reads (as in mimic-cxr-2.0.0-metadata).
METADATA_COLUMNS: tuple[str, ...] = ("dicom_id", "subject_id", "study_id", "ViewPosition", "StudyDate", "StudyTime")


def require_columns(frame: pl.DataFrame | pl.LazyFrame, columns: Sequence[str], what: str) -> None:
    """Raise :class:`MedfuseError` naming ``what`` and the first missing column."""
    present = frame.collect_schema().names() if isinstance(frame, pl.LazyFrame) else frame.columns
    missing = [c for c in columns if c not in present]
    if missing:
        raise MedfuseError(f"{what} lacks column(s) {', '.join(missing)}; rebuild it with the ETL step that writes it")


def _study_date() -> pl.Expr:
    text = pl.col("StudyDate").cast(pl.String).str.strip_chars()
    return pl.when(text.str.contains(r"^\d{8}$")).then(text.str.to_date("%Y%m%d", strict=False))


def _study_hhmmss() -> pl.Expr:
    return pl.col("StudyTime").cast(pl.Float64).floor().cast(pl.Int64)


def study_datetime() -> pl.Expr:
    """StudyDate (YYYYMMDD) + StudyTime (HHMMSS.fff, fractional seconds truncated) as a Datetime[us].

    Equivalent to the original's string build ``f"{StudyDate} {int(StudyTime):06d}"`` parsed as ``%Y%m%d %H%M%S``.
    Null where the date or time is impossible: :func:`check_study_times` finds those first.
    """
    hhmmss = _study_hhmmss()
    seconds = (hhmmss // 10000) * 3600 + (hhmmss // 100 % 100) * 60 + hhmmss % 100
    return (_study_date().cast(pl.Datetime("us")) + pl.duration(seconds=seconds)).alias("study_datetime")


def impossible_study_time() -> pl.Expr:
    """True where StudyDate is not a calendar date (YYYYMMDD) or StudyTime not a time of day (HHMMSS.fff), or
    either is missing. The original parses the two strictly and would stop on such a row."""
    hhmmss = _study_hhmmss()
    time = pl.col("StudyTime").cast(pl.Float64)
    bad_time = (time.is_null() | time.is_nan() | (time < 0) | (hhmmss // 10000 >= 24) | (hhmmss // 100 % 100 >= 60)
                | (hhmmss % 100 >= 60))
    return _study_date().is_null() | bad_time


def check_study_times(metadata: pl.DataFrame | pl.LazyFrame, source: str = "cxr_metadata") -> None:
    """Raise :class:`MedfuseError` naming ``source``, the image and its values at the first impossible StudyDate /
    StudyTime: parsed leniently, such a date would silently unlink the image or move it to another stay."""
    lazy = metadata.lazy()
    require_columns(lazy, ("StudyDate", "StudyTime"), source)
    if "dicom_id" in lazy.collect_schema().names():
        image = pl.format("dicom_id '{}'", pl.col("dicom_id"))
    else:
        image = pl.format("row {}", pl.int_range(pl.len()) + 1)
    bad = lazy.select(image.alias("image"), "StudyDate", "StudyTime", bad=impossible_study_time()).filter("bad")
    counted = bad.select(pl.len(), pl.col("image", "StudyDate", "StudyTime").first()).collect()
    n = counted["len"][0]
    if n:
        image, date, time = counted["image"][0], counted["StudyDate"][0], counted["StudyTime"][0]
        raise MedfuseError(
            f"{source}: {n:,} row(s) with an impossible or missing StudyDate (YYYYMMDD) / StudyTime (HHMMSS.fff), "
            f"e.g. {image}: StudyDate {date}, StudyTime {time}; fix or remove those rows"
        )


def with_study_datetime(metadata: pl.DataFrame) -> pl.DataFrame:
    """The metadata with a ``study_datetime`` column (kept as is when already there)."""
    if "study_datetime" in metadata.columns:
        return metadata
    check_study_times(metadata)
    return metadata.with_columns(study_datetime())


def link_cxr(stays: pl.DataFrame, metadata: pl.DataFrame, window_hours: float | None = 48.0,
             views: Sequence[str] | None = ("AP",)) -> pl.DataFrame:
    """The last X-ray of each stay inside the window: stay_id, dicom_id, study_datetime (stays without one omitted).

    ``stays``: subject_id, stay_id, intime, outtime. ``metadata``: dicom_id, subject_id, ViewPosition and either
    study_datetime or StudyDate + StudyTime. ``window_hours`` None = until outtime; ``views`` None = any view.

    >>> from datetime import datetime
    >>> stays = pl.DataFrame({"subject_id": [1], "stay_id": [10], "intime": [datetime(2150, 1, 1)],
    ...                       "outtime": [datetime(2150, 1, 5)]})
    >>> meta = pl.DataFrame({"dicom_id": ["a", "b", "c"], "subject_id": [1, 1, 1], "ViewPosition": ["AP", "AP", "PA"],
    ...                      "StudyDate": [20150101, 20150102, 20150101], "StudyTime": [120000.0, 10000.5, 130000.0]})
    >>> meta = meta.with_columns(pl.col("StudyDate") + 1350000)  # shift the toy dates into 2150
    >>> link_cxr(stays, meta, 48.0)["dicom_id"].to_list()
    ['b']
    >>> link_cxr(stays, meta, 12.0)["dicom_id"].to_list()
    ['a']
    """
    require_columns(stays, ("subject_id", "stay_id", "intime", "outtime"), "stays")
    require_columns(metadata, ("dicom_id", "subject_id", "ViewPosition"), "cxr_metadata")
    images = with_study_datetime(metadata).select(
        pl.col("dicom_id").cast(pl.String),
        pl.col("subject_id").cast(pl.Int64),
        pl.col("ViewPosition").cast(pl.String),
        pl.col("study_datetime").cast(pl.Datetime("us")),
    )
    if views:
        images = images.filter(pl.col("ViewPosition").is_in(list(views)))
    windows = stays.select(
        pl.col("subject_id").cast(pl.Int64),
        pl.col("stay_id").cast(pl.Int64),
        pl.col("intime").cast(pl.Datetime("us")).alias("_start"),
        (
            pl.col("outtime").cast(pl.Datetime("us"))
            if window_hours is None
            else pl.col("intime").cast(pl.Datetime("us")) + pl.duration(microseconds=round(window_hours * 3.6e9))
        ).alias("_end"),
    )
    return (
        windows.join(images, on="subject_id", how="inner")
        .filter((pl.col("study_datetime") >= pl.col("_start")) & (pl.col("study_datetime") <= pl.col("_end")))
        .sort(["stay_id", "study_datetime", "dicom_id"])
        .group_by("stay_id", maintain_order=True)
        .agg(pl.col("dicom_id").last(), pl.col("study_datetime").last())
    )


def cxr_image_path() -> pl.Expr:
    """``files/pNN/pSUBJECT/sSTUDY/DICOM.jpg`` relative to the MIMIC-CXR-JPG root (pNN = first 2 digits of the id)."""
    subject = pl.col("subject_id").cast(pl.String)
    study = pl.col("study_id").cast(pl.String)
    path = pl.format("files/p{}/p{}/s{}/{}.jpg", subject.str.slice(0, 2), subject, study, pl.col("dicom_id"))
    return path.alias("path")


def uzeros_labels() -> list[pl.Expr]:
    """The 14 CheXpert labels with uncertain (-1) and blank mapped to 0, as Int8."""
    return [
        pl.when(pl.col(name) == 1).then(1).otherwise(0).cast(pl.Int8).alias(name) for name in CHEXPERT_LABELS
    ]


def build_cxr_uni(metadata: pl.DataFrame, chexpert: pl.DataFrame, cxr_split: pl.DataFrame,
                  splits: pl.DataFrame, *, cxr_uni_split: str = "official") -> pl.DataFrame:
    """CXR_UNI from the raw metadata, CheXpert labels, MIMIC-CXR split and the EHR patient splits.

    ``splits``: subject_id, split and optionally ``ehr`` (only subjects with ``ehr`` true are treated as EHR
    patients; without the column every listed subject is). Ids are compared as integers. ``cxr_uni_split``: the
    switch, ``official`` or ``all_train`` (module docstring). Columns: dicom_id, subject_id, study_id,
    study_datetime, view_position, split, path, the 14 labels; sorted by dicom_id.
    """
    if cxr_uni_split not in switch("cxr_uni_split").values:
        raise MedfuseError(f"cxr_uni_split must be one of {', '.join(switch('cxr_uni_split').values)}, "
                           f"got '{cxr_uni_split}'")
    require_columns(metadata, METADATA_COLUMNS, "cxr_metadata")
    require_columns(chexpert, ("study_id", *CHEXPERT_LABELS), "cxr_chexpert")
    require_columns(cxr_split, ("dicom_id", "split"), "cxr_split")
    require_columns(splits, ("subject_id", "split"), "splits")
    images = with_study_datetime(metadata).select(
        pl.col("dicom_id").cast(pl.String),
        pl.col("subject_id").cast(pl.Int64),
        pl.col("study_id").cast(pl.Int64),
        pl.col("study_datetime").cast(pl.Datetime("us")),
        pl.col("ViewPosition").cast(pl.String).alias("view_position"),
    )
    labels = chexpert.select(pl.col("study_id").cast(pl.Int64), *uzeros_labels())
    if labels["study_id"].is_duplicated().any():
        raise MedfuseError("cxr_chexpert has more than one row per study_id; expected one label row per study")
    official = cxr_split.select(
        pl.col("dicom_id").cast(pl.String),
        pl.col("split").cast(pl.String).replace({"validate": "val"}).alias("_cxr_split"),
    ).unique("dicom_id", keep="first")
    unknown = official.filter(~pl.col("_cxr_split").is_in(["train", "val", "test"]))
    if unknown.height:
        raise MedfuseError(
            f"cxr_split column 'split' holds '{unknown['_cxr_split'][0]}'; expected train, validate or test"
        )
    ehr = splits.filter(pl.col("ehr")) if "ehr" in splits.columns else splits
    ehr = ehr.select(pl.col("subject_id").cast(pl.Int64), pl.col("split").alias("_ehr_split"))
    labelled = images.join(labels, on="study_id", how="inner")
    out = labelled.join(official, on="dicom_id", how="inner")
    if out.height < labelled.height:
        log.info("%d labelled images have no row in the MIMIC-CXR split table and are left out",
                 labelled.height - out.height)
    out = out.join(ehr, on="subject_id", how="left")
    evaluated = pl.col("_ehr_split").is_in(["val", "test"])
    if cxr_uni_split == "all_train":
        # The original sets every row to train, then val / test for the EHR val / test patients.
        split = pl.when(evaluated).then(pl.col("_ehr_split")).otherwise(pl.lit("train"))
    else:
        moved = (pl.col("_cxr_split") == "train") & evaluated
        split = pl.when(moved).then(pl.col("_ehr_split")).otherwise(pl.col("_cxr_split"))
    out = out.with_columns(split.alias("split"))
    n_moved = out.select((pl.col("split") != pl.col("_cxr_split")).sum()).item()
    sizes = dict(out.group_by("split").len().iter_rows())
    log.info("CXR_UNI (cxr_uni_split %s): %d images (train %d, val %d, test %d), %d not in their official split",
             cxr_uni_split, out.height, sizes.get("train", 0), sizes.get("val", 0), sizes.get("test", 0), n_moved)
    return out.select(
        "dicom_id", "subject_id", "study_id", "study_datetime", "view_position", "split", cxr_image_path(),
        *CHEXPERT_LABELS,
    ).sort("dicom_id")


def cxr_uni_exclusions(metadata: pl.DataFrame, chexpert: pl.DataFrame, cxr_split: pl.DataFrame) -> list[dict]:
    """Records of the metadata's images that CXR_UNI leaves out: those of a study without CheXpert labels (still
    cached when a task links them) and labelled images without a row in the MIMIC-CXR split table."""
    images = metadata.select(pl.col("dicom_id").cast(pl.String), pl.col("study_id").cast(pl.Int64))
    studies = chexpert.select(pl.col("study_id").cast(pl.Int64)).unique()
    unlabelled = images.join(studies, on="study_id", how="anti")
    labelled = images.join(studies, on="study_id", how="semi")
    unsplit = labelled.join(cxr_split.select(pl.col("dicom_id").cast(pl.String)), on="dicom_id", how="anti")
    image = pl.format("dicom_id '{}'", pl.col("dicom_id"))
    return exclusions.compact([
        exclusions.count_rows(unlabelled, pl.lit(True), stage="cxr_uni", file="cxr_metadata", column="study_id",
                              reason="study without CheXpert labels (mimic-cxr-2.0.0-chexpert)", example=image),
        exclusions.count_rows(unsplit, pl.lit(True), stage="cxr_uni", file="cxr_split", column="dicom_id",
                              reason="labelled image without a row in mimic-cxr-2.0.0-split", example=image),
    ])
