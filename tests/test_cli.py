"""The command line: every subcommand is found in the module ``COMMANDS`` names, and a stage imports only that one."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

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
    assert _choices(cli.build_parser("cohort")) == ["ingest", "cohort", "variables", "phenotypes", "bench-etl"]
    assert _choices(cli.build_parser("no-such-command")) == list(cli.COMMANDS)


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
