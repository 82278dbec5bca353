"""``fixres-edge`` command line: one module per subcommand in :mod:`fixres_edge.commands`.

Each command module exposes ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
Errors the user can act on are printed as one line; ``--debug`` shows the traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# Subcommand name -> module under fixres_edge.commands (imported only when that command runs,
# so `fixres-edge --help` does not pay for numba or onnxruntime).
COMMANDS = {
    "classify": "classify",
    "eval": "evaluate",
    "calibrate": "calibrate",
    "quantize": "quantize",
    "bench": "bench",
    "inspect": "inspect",
    "card": "card",
    "warmup": "warmup",
}


def _load(module_name: str):
    return importlib.import_module(f"fixres_edge.commands.{module_name}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fixres-edge",
        description="FixRes-aware preprocessing and ONNX Runtime image classification for small CPUs.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        try:
            module = _load(module_name) if (only is None or only == name) else None
        except ModuleNotFoundError:
            continue  # a command that is not built yet
        if module is None:
            sub.add_parser(name, add_help=False)
            continue
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks instead of one-line errors")
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Only the chosen subcommand's module is imported.
    chosen = next((a for a in argv if a in COMMANDS), None)
    parser = build_parser(only=chosen)
    args = parser.parse_args(argv)
    if args.version:
        from fixres_edge import __version__

        print(__version__)
        return 0
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, as Unix tools do.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except (ValueError, TypeError, OSError, RuntimeError, ImportError) as error:
        if args.debug:
            raise
        print(f"fixres-edge {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
