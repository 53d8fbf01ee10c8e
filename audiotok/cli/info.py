"""``audiotok info [NAME...] [--plain]``: registered codecs and shipped trained tokenizers (the table:
:mod:`audiotok.info`). Names are never cut: a terminal wide enough gets a table, anything else (a narrow
terminal, a pipe, a file, ``--plain``) plain text columns.
"""
from __future__ import annotations

import argparse
import io
import sys

from audiotok import info


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*",
                        help="codec names (default: all registered architectures and shipped models)")
    parser.add_argument("--plain", action="store_true",
                        help="plain text columns even on a terminal (the default when output is piped)")


def run(args: argparse.Namespace) -> int:
    rows = info.codec_rows(args.names or None)
    text = info.plain_table(rows)
    if not args.plain and sys.stdout.isatty():
        from rich.console import Console

        console, table = Console(), info.rich_table(rows)
        natural = Console(width=100_000, file=io.StringIO()).measure(table).maximum
        # On a terminal too narrow for the whole table, plain lines (soft-wrapped by the terminal) keep
        # every name and number whole, where a squeezed table would fold or cut them.
        if natural <= console.width:
            console.print(table)
            return 0
    print(text)
    print(f"\n{info.NOTE}")
    return 0
