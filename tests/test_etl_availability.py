"""``available_hours`` of events.parquet (when each kept value was stored) and the time-series window by
availability (switch ``window_by``), on hand-built frames."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl import discretiser as TS
from medfuse_bench.etl import variable_extraction as VX
from medfuse_bench.etl import variable_rules as VR
from medfuse_bench.fidelity import FidelityPolicy
from medfuse_bench.resources import feature_names

T0 = datetime(2150, 1, 2)
H = timedelta(hours=1)
M = timedelta(minutes=1)
STAYS = pl.DataFrame({"subject_id": [1, 2], "hadm_id": [10, 20], "stay_id": [100, 200], "intime": [T0, T0],
                      "outtime": [T0 + 48 * H, T0 + 24 * H]})
GCS = {220739: "4 Spontaneously", 223901: "6 Obeys Commands", 223900: "5 Oriented"}


def raw(*rows: tuple) -> pl.DataFrame:
    """(stay_id or None for a lab of stay 100's admission, hours, itemid, value, storetime minutes or None)."""
    out = []
    for stay, hours, itemid, value, stored in rows:
        subject, hadm = (2, 20) if stay == 200 else (1, 10)
        t = T0 + hours * H
        out.append((subject, hadm, stay, t, None if stored is None else t + stored * M, itemid, value))
    return pl.DataFrame(out, schema=VX.RAW_EVENT_SCHEMA, orient="row")


def available(frame: pl.DataFrame, fidelity: str = "corrected") -> dict[tuple[int, float, str], float]:
    out, _ = VX.extract_coded_events(frame, STAYS, policy=FidelityPolicy.preset(fidelity))
    assert out.schema == pl.Schema({**VX.FILE_SCHEMA, "variable": VR.VARIABLE, "value_text": VR.VALUE_TEXT})
    return {(s, h, str(v)): round(a, 6) for s, h, v, a in out.select("stay_id", "hours", "variable",
                                                                      "available_hours").rows()}


@pytest.mark.parametrize("fidelity", ["original", "corrected"])
def test_available_hours_is_the_latest_storetime_of_the_kept_value(fidelity: str):
    frame = raw(
        (100, 1, 220045, "80", 10),  # heart rate stored 10 min after its charttime
        (100, 2, 220045, "82", None),  # no storetime: available at its charttime
        (100, 3, 220045, "84", -5),  # stored "before" its charttime: never earlier than the charttime
        (100, 4, 220210, "12", 5), (100, 4, 220210, "14", 30),  # two rows of one key: the later storetime
        (None, 5, 50931, "110", 120),  # a lab stored two hours after the draw
    )
    got = available(frame, fidelity)
    assert got[(100, 1.0, "Heart Rate")] == round(1 + 10 / 60, 6)
    assert got[(100, 2.0, "Heart Rate")] == 2.0
    assert got[(100, 3.0, "Heart Rate")] == 3.0
    assert got[(100, 4.0, "Respiratory rate")] == 4.5
    assert got[(100, 5.0, "Glucose")] == 7.0


def test_derived_gcs_total_is_available_with_its_last_component():
    frame = raw(*((100, 6, item, text, stored) for (item, text), stored in zip(GCS.items(), (3, 40, 12))))
    assert available(frame)[(100, 6.0, VR.GCS_TOTAL)] == round(6 + 40 / 60, 6)


def test_packed_and_four_column_sorts_give_the_same_available_hours(monkeypatch: pytest.MonkeyPatch):
    rng = np.random.default_rng(3)
    items = [220045, 220210, *GCS]
    rows = [(int(rng.choice([100, 200])), int(rng.integers(0, 6)), int(item),
             GCS.get(int(item), str(int(rng.integers(10, 100)))), int(rng.integers(0, 90)))
            for item in rng.choice(items, 300)]
    packed = available(raw(*rows))
    monkeypatch.setattr(VX, "event_packing", lambda *args: None)
    assert available(raw(*rows)) == packed and len(packed) > 20


def test_variables_keeps_extract_events_columns():
    out, _ = VX.extract_events(raw((100, 1, 220045, "80", 10)), STAYS)
    assert out.schema == pl.Schema(VX.EVENTS_SCHEMA)


# --- the window of the time series -------------------------------------------------------------------------------


def _events(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"stay_id": pl.Int64, "hours": pl.Float64, "available_hours": pl.Float64,
                                      "variable": pl.String, "value": pl.Float64, "value_text": pl.String},
                        orient="row")


SAMPLES = pl.DataFrame({"stay_id": [1], "split": ["train"], "period_length": [4.0]})


def test_window_by_storetime_leaves_out_values_stored_after_the_window():
    hr = feature_names().index("Heart Rate")
    mask = feature_names().index("mask->Heart Rate")
    rows = [(1, 1.0, 1.2, "Heart Rate", 70.0, None), (1, 3.5, 4.5, "Heart Rate", 120.0, None)]
    by_chart, _ = TS.discretize(_events(rows), SAMPLES, 1.0)
    by_store, _ = TS.discretize(_events(rows), SAMPLES, 1.0, window_by="storetime")
    assert by_chart[-1, hr] == 120.0 and by_chart[:, mask].tolist() == [1, 0, 0, 1]
    # the 3.5 h value was stored at 4.5 h, after the 4 h window: not there at prediction time
    assert by_store[-1, hr] == 70.0 and by_store[:, mask].tolist() == [1, 0, 0, 0]


def test_window_by_storetime_needs_available_hours():
    events = _events([(1, 1.0, 1.2, "Heart Rate", 70.0, None)]).drop("available_hours")
    with pytest.raises(MedfuseError, match="available_hours"):
        TS.discretize(events, SAMPLES, 1.0, window_by="storetime")
    with pytest.raises(MedfuseError, match="window_by"):
        TS.discretize(events, SAMPLES, 1.0, window_by="stored")


# --- the experiment trained on the availability window -------------------------------------------------------------


def test_ehr_partial_available_reads_the_arrays_of_its_subfolder(tmp_path):
    import shutil
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from train_fixtures import TASK, make_workdir

    from medfuse_bench.train.data import load_task_data
    from medfuse_bench.train.experiments import AVAILABLE_TIMESERIES, get_experiment

    spec = get_experiment("ehr-partial-available")
    assert spec.timeseries == AVAILABLE_TIMESERIES and spec.training_set == get_experiment("ehr-partial").training_set
    work = make_workdir(tmp_path, counts={"train": 6, "val": 3, "test": 3}, extra_images=0)
    folder = work.tasks_dir / TASK
    (folder / AVAILABLE_TIMESERIES).mkdir()
    shutil.copy(folder / "timeseries_index.parquet", folder / AVAILABLE_TIMESERIES)
    for split in ("train", "val", "test"):
        np.save(folder / AVAILABLE_TIMESERIES / f"timeseries_{split}.npy",
                np.load(folder / f"timeseries_{split}.npy") + 1.0)
    default = load_task_data(work.tasks_dir, TASK, ["mortality"], None)
    available = load_task_data(work.tasks_dir, TASK, ["mortality"], None, spec.timeseries)
    assert available.samples.equals(default.samples)
    assert np.array_equal(np.asarray(available.timeseries["test"]), np.asarray(default.timeseries["test"]) + 1.0)
