"""Config validation, defaults, scales (size presets), and the generated reference docs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from medfuse_bench.config import SCALES, load_config, resolve_config, validate_config
from medfuse_bench.config.docs import render_config_docs
from medfuse_bench.errors import MedfuseError
from medfuse_bench.fidelity import FidelityPolicy

from dag_helpers import TEST_CONFIG

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_config_resolves_to_demo_on_synthetic_data():
    cfg = load_config(ROOT / "config.yaml")
    assert cfg["scale"] == "demo"
    assert cfg["synthetic"]["enabled"] is True
    assert cfg["mimic_iv_dir"].endswith("synthetic/mimic-iv")
    assert cfg["train"]["max_epochs"] == SCALES["demo"]["train"]["max_epochs"]
    assert cfg["fidelity"] == "corrected" and cfg["fidelity_switches"] == {}


def test_test_configuration_is_synthetic_data_at_the_smoke_scale():
    # the DAG tests give it after config.yaml: it wins over a config.yaml that names real data
    real = yaml.safe_load((ROOT / "config.yaml").read_text())
    real.update(mimic_iv_dir="/data/iv", mimic_cxr_dir="/data/cxr", scale="paper")
    test = yaml.safe_load(TEST_CONFIG.read_text())
    for config in (test, {**real, **test}):
        cfg = resolve_config(validate_config(config))
        assert cfg["scale"] == "smoke" and cfg["synthetic"]["enabled"] is True
        assert cfg["synthetic"]["stays"] == SCALES["smoke"]["synthetic"]["stays"]


def test_real_data_defaults_to_paper_scale_and_explicit_keys_win():
    cfg = resolve_config(
        validate_config({"mimic_iv_dir": "/data/iv", "mimic_cxr_dir": "/data/cxr", "train": {"max_epochs": 3}})
    )
    assert cfg["scale"] == "paper"
    assert cfg["train"]["max_epochs"] == 3
    assert cfg["train"]["lr_draws"] == 10
    assert cfg["images"] == {"resize": 256, "crop": 224, "augment": True, "skip_unreadable": False}


def test_outlier_handling_is_the_outliers_switch():
    # the preset decides, and the switch alone overrides it; the old etl key is gone
    assert FidelityPolicy.from_config(resolve_config(validate_config({"fidelity": "original"}))).outliers == "keep"
    assert FidelityPolicy.from_config(resolve_config(validate_config({}))).outliers == "range"
    cfg = resolve_config(validate_config({"fidelity": "corrected", "fidelity_switches": {"outliers": "keep"}}))
    assert FidelityPolicy.from_config(cfg).deviations() == {"outliers": "keep"}
    assert "outlier_handling" not in cfg["etl"]
    with pytest.raises(MedfuseError, match="outlier_handling"):
        validate_config({"etl": {"outlier_handling": "keep"}})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"scal": "smoke"}, "'scal'"),
        ({"scale": "huge"}, "key 'scale'"),
        ({"train": {"batch_size": 0}}, "key 'train.batch_size'"),
        ({"etl": {"split": {"train": 0.95, "val": 0.1}}}, "etl.split.train"),
        ({"mimic_iv_dir": "/x"}, "mimic_cxr_dir"),
        ({"train": {"lr_min": 0.1, "lr_max": 0.01}}, "train.lr_min"),
    ],
)
def test_bad_keys_fail_with_the_key_name(config, message):
    with pytest.raises(MedfuseError, match=message.replace(".", r"\.").replace("'", "'")):
        validate_config(config)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"scal": "smoke"}, "config: unknown key 'scal'; did you mean 'scale'?"),
        ({"etl": {"cohort_prest": "medfuse"}},
         "config: unknown key 'etl.cohort_prest'; did you mean 'etl.cohort_preset'?"),
        ({"etl": {"task_overrides": {"phenotypng": {}}}},
         "config: unknown key 'etl.task_overrides.phenotypng'; did you mean 'etl.task_overrides.phenotyping'?"),
        ({"etl": {"task_overrides": {"phenotyping": {"ts_window": 3}}}},
         "config: unknown key 'etl.task_overrides.phenotyping.ts_window'; "
         "did you mean 'etl.task_overrides.phenotyping.ts_window_hours'?"),
        ({"images": {"zoom": 2}}, "config: unknown key 'images.zoom'; valid keys in 'images': resize, crop, augment, "
                                  "skip_unreadable"),
    ],
)
def test_unknown_key_names_the_closest_valid_key(config, message):
    with pytest.raises(MedfuseError) as info:
        validate_config(config)
    assert str(info.value) == message


@pytest.mark.parametrize(("value", "shown"), [("smoke", "smoke"), (None, "null")])
def test_old_profile_key_names_its_new_name(value, shown):
    # the size preset was `profile`, the word of Snakemake's --profile (executor settings); the old key is an error,
    # whatever else the config holds
    with pytest.raises(MedfuseError) as info:
        validate_config({"profile": value, "scale": "demo", "tarin": {}})
    assert str(info.value) == (f"config: config key 'profile' was renamed to 'scale'; write 'scale: {shown}' "
                               f"(on Snakemake's command line: --config scale={shown})")


def test_config_cli_old_profile_key_is_one_line(tmp_path, cli_process):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["profile"] = config.pop("scale")
    old = tmp_path / "config.yaml"
    old.write_text(yaml.safe_dump(config))
    proc = cli_process("config", "--config", old)
    assert proc.returncode == 2
    assert proc.stderr == (f"medfuse-bench: error: {old}: config key 'profile' was renamed to 'scale'; "
                           "write 'scale: null' (on Snakemake's command line: --config scale=null)\n")


def test_config_cli_unknown_key_is_one_line_with_the_closest_key(tmp_path, cli_process):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["train"]["max_epoch"] = config["train"].pop("max_epochs")
    bad = tmp_path / "config.yaml"
    bad.write_text(yaml.safe_dump(config))
    proc = cli_process("config", "--config", bad)
    assert proc.returncode == 2
    assert proc.stderr == (f"medfuse-bench: error: {bad}: unknown key 'train.max_epoch'; "
                           "did you mean 'train.max_epochs'?\n")


def test_config_cli_names_bad_key_and_exits_2(tmp_path, cli_process):
    bad = tmp_path / "config.yaml"
    bad.write_text(yaml.safe_dump({"train": {"max_epochs": "many"}}))
    proc = cli_process("config", "--config", bad)
    assert proc.returncode == 2
    assert "train.max_epochs" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_configuration_docs_are_in_sync_with_schema():
    assert (ROOT / "docs" / "configuration.md").read_text() == render_config_docs()


def test_every_schema_key_has_a_description():
    from medfuse_bench.config import load_schema

    def walk(props, prefix=""):
        for key, spec in props.items():
            assert spec.get("description"), f"{prefix}{key} has no description"
            walk(spec.get("properties", {}), f"{prefix}{key}.")
            for sub in spec.get("patternProperties", {}).values():
                walk(sub.get("properties", {}), f"{prefix}{key}.<task>.")

    walk(load_schema()["properties"])


def test_workdir_spelling_is_normalised():
    cfg = resolve_config(validate_config({"workdir": "./out//run/"}))
    assert cfg["workdir"] == "out/run"
    assert cfg["mimic_iv_dir"] == "out/run/synthetic/mimic-iv"
