"""``fixres-edge warmup``: compile every kernel into the JIT cache on this device."""
from __future__ import annotations

import time

NAME = "warmup"
HELP = "compile every preprocessing kernel into the JIT cache (run once per device)"


def add_arguments(parser) -> None:
    parser.add_argument("--threads", type=int, default=None,
                        help="also prepare the parallel kernels for this thread count (default: serial and default)")
    parser.add_argument("--quiet", action="store_true", help="print only the total")


def run(args) -> int:
    from fixres_edge._jit import configure_numba
    from fixres_edge.warm import warmup

    numba = configure_numba()
    start = time.perf_counter()
    spent = warmup(threads=(1, args.threads), verbose=not args.quiet)
    total = time.perf_counter() - start
    cache = numba.core.config.CACHE_DIR or "next to the package sources (__pycache__)"
    print(f"warmed {len(spent)} kernel signatures in {total:.1f} s; cache: {cache}")
    return 0
