"""``fixres-edge warmup``: compile the kernels for this device, once (ahead of time when it can)."""
from __future__ import annotations

import sys
import time

NAME = "warmup"
HELP = "compile the preprocessing kernels for this device (once): an ahead-of-time module, else the JIT cache"


def add_arguments(parser) -> None:
    parser.add_argument("--jit-only", action="store_true",
                        help="fill only the JIT cache (no ahead-of-time module)")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")


def run(args) -> int:
    from fixres_edge._jit import jit_cache_dir
    from fixres_edge.warm import warmup

    start = time.perf_counter()
    done = warmup(aot=not args.jit_only)
    if done.aot_error:
        print(f"fixres-edge warmup: {done.aot_error}", file=sys.stderr)
    if not args.quiet:
        for step, seconds in done.seconds.items():
            print(f"{step:28s} {seconds:8.1f} s")
    print(f"kernels ready in {time.perf_counter() - start:.1f} s: {done.backend}; JIT cache: {jit_cache_dir()}")
    return 0
