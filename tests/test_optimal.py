"""MedFuse (OPTIMAL) chosen from the uni-modal sweep: the choice, the selection file and its checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medfuse_bench.cli import main
from medfuse_bench.errors import MedfuseError
from medfuse_bench.train.optimal import choose_point, select_optimal, sweep_fractions

TASK = "in-hospital-mortality"


def plant_sweep(root: Path, aurocs: dict[int, float | None], lr: float = 2e-4) -> list[Path]:
    """models/T/medfuse-p{N}/selected.json with a checkpoint file, one per planted validation AUROC."""
    paths = []
    for percent, auroc in aurocs.items():
        folder = root / "models" / TASK / f"medfuse-p{percent}"
        (folder / "runs" / "lr0").mkdir(parents=True)
        checkpoint = folder / "runs" / "lr0" / "checkpoint.pt"
        checkpoint.write_bytes(b"weights")
        selected = {"experiment": folder.name, "task": TASK, "draw": 0, "lr": lr, "val_auroc": auroc,
                    "val_auprc": 0.3, "best_epoch": 1, "checkpoint": str(checkpoint),
                    "runs": [{"draw": 0, "lr": lr, "val_auroc": auroc}]}
        (folder / "selected.json").write_text(json.dumps(selected))
        paths.append(folder / "selected.json")
    return paths


def test_the_planted_best_point_is_chosen_and_recorded(tmp_path):
    paths = plant_sweep(tmp_path, {0: 0.71, 10: 0.74, 20: 0.90, 100: 0.73})
    out = tmp_path / "models" / TASK / "medfuse-optimal" / "selected.json"
    selected = select_optimal(paths, out, sweep_lr="own_search")
    assert selected["chosen_experiment"] == "medfuse-p20" and selected["uni_fraction"] == 0.2
    assert selected["checkpoint"] == str(paths[2].parent / "runs" / "lr0" / "checkpoint.pt")
    written = json.loads(out.read_text())
    assert written["experiment"] == "medfuse-optimal" and written["val_auroc"] == 0.90
    assert [(p["fraction"], p["val_auroc"]) for p in written["sweep"]] == [(0.0, 0.71), (0.1, 0.74), (0.2, 0.9),
                                                                          (1.0, 0.73)]
    assert written["protocol"] == {"optimal_fraction": "sweep_best", "sweep_lr": "own_search"}


def test_ties_go_to_the_smaller_fraction_and_a_missing_auroc_ranks_last():
    points = [{"fraction": 1.0, "val_auroc": 0.8}, {"fraction": 0.1, "val_auroc": 0.8},
              {"fraction": 0.0, "val_auroc": float("nan")}, {"fraction": 0.2, "val_auroc": None}]
    assert choose_point(points) == 1
    assert choose_point([{"fraction": 0.5, "val_auroc": None}]) == 0
    with pytest.raises(MedfuseError, match="at least one sweep point"):
        choose_point([])


def test_the_sweep_holds_the_configured_fractions_only_when_optimal_is_chosen():
    assert sweep_fractions([0.0, 1.0], [0.1, 0.2], "sweep_best") == [0.0, 0.1, 0.2, 1.0]
    assert sweep_fractions([0.0, 0.1, 1.0], [0.1, 0.2], "sweep_best") == [0.0, 0.1, 0.2, 1.0]
    assert sweep_fractions([0.0, 1.0], [0.1, 0.2], "paper_fixed") == [0.0, 1.0]
    assert sweep_fractions([], [0.1], "sweep_best") == [0.1]


def test_medfuse_pt_lr_protocol_refuses_a_point_trained_at_another_lr(tmp_path):
    paths = plant_sweep(tmp_path, {0: 0.7, 10: 0.8}, lr=2e-4)
    pt = tmp_path / "pt.json"
    pt.write_text(json.dumps({"lr": 2e-4, "val_auroc": 0.8, "checkpoint": "x"}))
    selected = select_optimal(paths, tmp_path / "opt.json", sweep_lr="medfuse_pt_best", pt_selected=pt)
    assert selected["lr_source"] == {"selected": str(pt), "lr": 2e-4} and selected["lr"] == 2e-4
    pt.write_text(json.dumps({"lr": 5e-4, "val_auroc": 0.8, "checkpoint": "x"}))
    with pytest.raises(MedfuseError, match="medfuse-p0/selected.json' was trained at lr 0.0002, not at MedFuse"):
        select_optimal(paths, tmp_path / "opt2.json", sweep_lr="medfuse_pt_best", pt_selected=pt)
    assert not (tmp_path / "opt2.json").exists()


def test_a_file_that_is_not_a_sweep_point_is_named(tmp_path):
    other = tmp_path / "models" / TASK / "medfuse-pt" / "selected.json"
    other.parent.mkdir(parents=True)
    other.write_text("{}")
    with pytest.raises(MedfuseError, match="not the selection of a sweep point"):
        select_optimal([other], tmp_path / "o.json", sweep_lr="own_search")


def test_subcommand_writes_the_selection(tmp_path, capsys):
    paths = plant_sweep(tmp_path, {0: 0.6, 100: 0.65})
    out = tmp_path / "opt.json"
    assert main(["select-optimal", "--points", *map(str, paths), "--out", str(out), "--sweep-lr", "own_search"]) == 0
    assert json.loads(out.read_text())["chosen_experiment"] == "medfuse-p100"
    assert "MedFuse (OPTIMAL) = medfuse-p100" in capsys.readouterr().out
    assert main(["select-optimal", "--points", str(paths[0]), "--out", str(out), "--sweep-lr", "medfuse_pt_best"]) == 2


def test_sweep_point_at_pt_lr_becomes_optimal_and_predicts(tmp_path):
    """train --lr-from, select, select-optimal and predict of medfuse-optimal on tiny fabricated data."""
    import sys

    import polars as pl
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from train_fixtures import make_workdir

    from medfuse_bench.train.image_cache import build_image_cache

    torch.set_num_threads(1)
    w = make_workdir(tmp_path, counts={"train": 30, "val": 16, "test": 8}, extra_images=2)
    build_image_cache(w.cxr_uni, w.mimic_cxr, 32, w.cache)
    models = tmp_path / "models" / TASK
    pt = models / "medfuse-pt" / "selected.json"
    pt.parent.mkdir(parents=True)
    pt.write_text(json.dumps({"lr": 3.3e-4, "val_auroc": 0.7, "checkpoint": "unused"}))
    common = ["--tasks-dir", str(w.tasks_dir), "--image-cache", str(w.cache), "--cxr-uni", str(w.cxr_uni),
              "--max-epochs", "1", "--crop", "28", "--device", "cpu", "--threads", "1", "--quiet"]
    encoders = {}
    for task, experiment in ((TASK, "ehr-partial"), ("radiology", "cxr-pretrain")):
        run = tmp_path / "models" / task / experiment / "runs" / "lr0"
        assert main(["train", *common, "--task", task, "--experiment", experiment, "--lr", "1e-3",
                     "--out-dir", str(run)]) == 0
        encoders[experiment] = str(run / "checkpoint.pt")
    points = []
    for experiment in ("medfuse-p0", "medfuse-p100"):
        run = models / experiment / "runs" / "lr0"
        assert main(["train", *common, "--task", TASK, "--experiment", experiment, "--lr-from", str(pt),
                     "--ehr-init", encoders["ehr-partial"], "--cxr-init", encoders["cxr-pretrain"],
                     "--out-dir", str(run)]) == 0
        points.append(models / experiment / "selected.json")
        assert main(["select", "--runs", str(run), "--out", str(points[-1])]) == 0
        assert json.loads(points[-1].read_text())["lr"] == pytest.approx(3.3e-4)
    optimal = models / "medfuse-optimal" / "selected.json"
    assert main(["select-optimal", "--points", *map(str, points), "--out", str(optimal),
                 "--sweep-lr", "medfuse_pt_best", "--pt-selected", str(pt)]) == 0
    chosen = json.loads(optimal.read_text())["chosen_experiment"]
    out = tmp_path / "predictions" / TASK / "medfuse-optimal"
    assert main(["predict", "--selected", str(optimal), "--tasks-dir", str(w.tasks_dir), "--image-cache", str(w.cache),
                 "--task", TASK, "--experiment", "medfuse-optimal", "--out-dir", str(out), "--device", "cpu"]) == 0
    assert pl.read_parquet(out / "paired.parquet").height > 0
    # the checkpoint of a sweep point is refused for any other experiment than the one that chose it
    assert main(["predict", "--selected", str(models / chosen / "selected.json"), "--tasks-dir", str(w.tasks_dir),
                 "--image-cache", str(w.cache), "--task", TASK, "--experiment", "medfuse-pt",
                 "--out-dir", str(tmp_path / "x"), "--device", "cpu"]) == 2


def test_a_seed_run_takes_the_chosen_fraction_from_the_selection(tmp_path):
    from medfuse_bench.train.optimal import selected_uni_fraction

    paths = plant_sweep(tmp_path, {0: 0.71, 20: 0.90, 100: 0.73})
    out = tmp_path / "opt.json"
    select_optimal(paths, out, sweep_lr="own_search")
    assert selected_uni_fraction(out) == 0.2  # `train --lr-from` uses it when --uni-fraction is not given
    assert selected_uni_fraction(paths[0]) is None  # a plain selection names no fraction
