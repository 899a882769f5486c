"""``medfuse-bench config``: validate a config file and print the resolved configuration."""

from __future__ import annotations

import argparse

import yaml

from medfuse_bench.config import load_config
from medfuse_bench.config.resolved_config import write_resolved_config
from medfuse_bench.io import write_text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="validate config.yaml and print (or write) the resolved configuration")
    p.add_argument("--config", default="config.yaml", help="config file (default: config.yaml)")
    p.add_argument("--out", default=None, help="write the resolved configuration here instead of printing it")
    p.add_argument("--docs", action="store_true", help="print the Markdown reference of every config key instead")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.docs:
        from medfuse_bench.config.docs import render_config_docs

        text = render_config_docs()
        if args.out:
            write_text(text, args.out)
        else:
            print(text, end="")
        return 0
    resolved = load_config(args.config)
    if args.out:
        write_resolved_config(resolved, args.out)
    else:
        print(yaml.safe_dump(resolved, sort_keys=False), end="")
    return 0
