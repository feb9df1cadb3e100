"""``arsound data prepare``: user errors are one-line ``ValueError`` s (the CLI prints them and exits 2)."""
from __future__ import annotations

import argparse

import pytest

from arsound.cli.data import add_parser


def parse(argv):
    p = argparse.ArgumentParser(prog="arsound")
    add_parser(p.add_subparsers(dest="verb", required=True))
    return p.parse_known_args(argv)


@pytest.mark.parametrize("argv,needle", [
    (["data", "prepare", "nope"],
     "unknown dataset 'nope'; choose from ['chorales', 'chorales-2sf', 'digits', 'mnist', 'speech']"),
    (["data", "prepare", "speech", "--languages", "en,xx"], "unknown language(s) ['xx']"),
    (["data", "prepare", "speech", "--all-programs"], "apply to 'chorales' only"),
    (["data", "prepare", "chorales", "--limit", "0"], "--limit must be >= 1"),
])
def test_cli_user_errors_are_value_errors(argv, needle, tmp_path):
    args, extra = parse(argv + ["--root", str(tmp_path)])
    with pytest.raises(ValueError) as e:  # arsound.cli prints these as one line and exits 2
        args.func(args, extra)
    assert needle in str(e.value) and "\n" not in str(e.value)
