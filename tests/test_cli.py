"""The command line: every subcommand is found in the module ``COMMANDS`` names, and a stage imports only that one."""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from medfuse_bench import cli


def _choices(parser: argparse.ArgumentParser) -> list[str]:
    return list(next(a for a in parser._actions if a.dest == "command").choices)


def test_commands_table_matches_the_modules():
    for module in dict.fromkeys(cli.COMMANDS.values()):
        parser = argparse.ArgumentParser()
        importlib.import_module(module).register(parser.add_subparsers(dest="command"))
        assert _choices(parser) == [c for c, m in cli.COMMANDS.items() if m == module]
    assert _choices(cli.build_parser()) == list(cli.COMMANDS)
    assert _choices(cli.build_parser("cohort")) == ["cohort"]
    assert _choices(cli.build_parser("no-such-command")) == list(cli.COMMANDS)


#: The rule files of the ETL side, whose rules each name their subcommand's module.
ETL_RULE_FILES = ("etl.smk", "synth.smk", "drift.smk", "leakage_audit.smk", "receipt.smk")
#: Rules that run another rule's subcommand, or none (docs/architecture.md says why).
SHARED_COMMANDS = {"timeseries_available": "timeseries", "resolved_config": None, "etl": None}


def test_every_etl_rule_runs_the_subcommand_of_the_module_named_after_it():
    rules_dir = Path(__file__).resolve().parents[1] / "workflow" / "rules"
    checked = []
    for name in ETL_RULE_FILES:
        text = (rules_dir / name).read_text()
        for rule, body in re.findall(r"^rule (\w+):\n(.*?)(?=^\S|\Z)", text, re.M | re.S):
            called = re.findall(r"medfuse-bench ([a-z-]+)", body)
            if rule in SHARED_COMMANDS:
                assert called == ([SHARED_COMMANDS[rule].replace("_", "-")] if SHARED_COMMANDS[rule] else []), rule
                continue
            command = rule.replace("_", "-")
            assert called == [command], (rule, called)
            assert cli.COMMANDS[command].rsplit(".", 1)[1] == rule, (rule, cli.COMMANDS[command])
            checked.append(rule)
    assert {"ingest", "cxr_uni", "etl_summary", "check_splits", "synth", "drift", "leakage_audit"} <= set(checked)
    resolved = (rules_dir / "etl.smk").read_text()
    assert "from medfuse_bench.config.resolved_config import" in resolved


#: The rule files of the training and evaluation side, whose rules each run the command module named after them.
TRAIN_RULE_FILES = ("train.smk", "report.smk")


def test_every_training_and_evaluation_rule_runs_the_command_module_named_after_it():
    rules_dir = Path(__file__).resolve().parents[1] / "workflow" / "rules"
    checked = []
    for name in TRAIN_RULE_FILES:
        text = (rules_dir / name).read_text()
        for rule, body in re.findall(r"^ *rule (\w+):\n(.*?)(?=^\S|\Z)", text, re.M | re.S):
            called = re.findall(r"medfuse-bench ([a-z-]+)", body)
            if rule == "models":  # a target: every model's selection and predictions
                assert called == []
                continue
            command = rule.replace("_", "-")
            assert called == [command], (rule, called)
            assert cli.COMMANDS[command] == f"medfuse_bench.commands.{rule}", (rule, cli.COMMANDS[command])
            checked.append(rule)
    assert set(checked) == {"image_cache", "train", "select", "select_optimal", "predict", "ensemble", "report",
                            "leaderboard"}
    for command in ("score", "evaluate"):  # outside the workflow, same layout
        assert cli.COMMANDS[command] == f"medfuse_bench.commands.{command}"


#: Rules that rerun a pipeline step per training seed with that step's own subcommand (train.seeds).
SEED_RULES = {"train_seed": "train", "predict_seed": "predict"}


def test_every_rule_file_is_checked_and_seed_rules_reuse_their_step():
    """No rule file escapes the rule -> subcommand -> module checks above; the seed rules run train and predict."""
    rules_dir = Path(__file__).resolve().parents[1] / "workflow" / "rules"
    files = {p.name for p in rules_dir.glob("*.smk")} - {"common.smk"}
    assert files == {*ETL_RULE_FILES, *TRAIN_RULE_FILES, "seeds.smk"}
    text = (rules_dir / "seeds.smk").read_text()
    found = dict(re.findall(r"^rule (\w+):\n.*?medfuse-bench ([a-z-]+)", text, re.M | re.S))
    assert found == SEED_RULES


def test_benchmarks_are_not_pipeline_commands():
    assert not {"bench-etl", "bench-train", "bench-metrics"} & set(cli.COMMANDS)


def test_bench_etl_is_not_a_pipeline_command():
    assert "bench-etl" not in cli.COMMANDS


def test_a_stage_does_not_import_the_generator_torch_or_matplotlib():
    code = ("import sys; from medfuse_bench.cli import main\n"
            "try:\n    main(['splits', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'matplotlib', 'medfuse_bench.synth.dataset') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_unknown_command_lists_them_all(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["no-such-command"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice" in err and "task-tables" in err
