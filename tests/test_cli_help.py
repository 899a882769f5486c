"""Help texts are read in a terminal: no reStructuredText markup from the docstrings they come from."""

from __future__ import annotations

import re

import pytest

from medfuse_bench.cli import build_parser

RST = re.compile(r"``|:(?:class|func|mod|meth|attr):`")


@pytest.mark.parametrize("command", ["splits", "check-splits"])
def test_help_shows_no_rst_markup(command, capsys):
    with pytest.raises(SystemExit):
        build_parser(command).parse_args([command, "--help"])
    text = capsys.readouterr().out
    assert "usage: medfuse-bench" in text and "split" in text
    assert not RST.search(text), RST.findall(text)
