"""Run the ``fixres-edge`` command line in-process and capture what it printed.

Import from test modules (``from cli_runner import run_cli``), never from another test module.
"""
from __future__ import annotations


def run_cli(argv, capsys) -> tuple[int, str, str]:
    """``(exit code, stdout, stderr)`` of ``fixres-edge *argv`` (``capsys`` is pytest's fixture)."""
    from fixres_edge import cli

    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err
