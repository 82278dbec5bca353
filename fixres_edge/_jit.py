"""The one place that decides how kernels are compiled.

Every Numba option of the project lives here: kernels are declared with :func:`kernel`, which
returns a :class:`KernelPair` (a serial and a ``parallel=True`` build of the same source), or with
:func:`serial_kernel` (one build; the interleaved kernel gets its threads from
``fixres_edge.workers`` instead of OpenMP).

Why each choice:

* ``cache=True``: a cold compile costs seconds per kernel; a warm cache loads in milliseconds.
  A cache is only valid on the CPU model that wrote it, so edge devices warm up on the device
  (``fixres-edge warmup``).
* ``nogil=True``: callers may run one ``Preprocessor`` from several Python threads.
* ``boundscheck=False`` and ``error_model="numpy"``: no exception paths in the inner loops, which
  lets LLVM vectorize them. Kernels only index with ranges the planner proved valid.
* ``fastmath`` limited to contraction (FMA): same results in serial and parallel builds, no
  reassociation that would make outputs depend on the thread split.
* Lazy dispatchers (no signatures): nothing compiles at import; :func:`fixres_edge.warmup`
  compiles every signature explicitly.
* Read-only installs (numba#4908): when the package directory is not writable and
  ``NUMBA_CACHE_DIR`` is unset, the cache goes to the user cache directory instead.
* A short OpenMP spin (``GOMP_SPINCOUNT``, for the kernels that still use ``prange``) unless the
  user set a wait policy: long-spinning OpenMP workers fight ONNX Runtime's threads
  (onnxruntime#3099); set when numba is first configured, never at ``import fixres_edge``.
"""
from __future__ import annotations

import os
import sys
import tempfile
import threading
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

_PACKAGE_DIR = Path(__file__).resolve().parent

# Spins (a few tens of microseconds) an idle OpenMP worker waits before sleeping; see configure_numba.
GOMP_SPINCOUNT = "30000"

JIT_OPTIONS: dict[str, Any] = {
    "cache": True,
    "nogil": True,
    "boundscheck": False,
    "error_model": "numpy",
    "fastmath": {"contract"},
}


def _writable(directory: Path) -> bool:
    """True when files can be created in ``directory`` (creating it if needed)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory):
            pass
        return True
    except OSError:
        return False


def user_cache_dir() -> Path:
    """The per-user cache directory for compiled kernels (XDG on Linux, ~/Library/Caches on macOS)."""
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "fixres_edge" / "numba"


def choose_cache_dir() -> Path | None:
    """Where Numba should cache, or None to keep Numba's own choice (next to the sources).

    An explicit ``NUMBA_CACHE_DIR`` always wins. Otherwise the in-tree ``__pycache__`` is used when
    the package directory is writable; if not, the user cache directory, and failing that a
    directory under the system temp dir, so that ``cache=True`` never turns into an error.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    if _writable(_PACKAGE_DIR / "kernels" / "__pycache__"):
        return None
    for candidate in (user_cache_dir(), Path(tempfile.gettempdir()) / f"fixres_edge-numba-{os.getuid() if hasattr(os, 'getuid') else 'user'}"):
        if _writable(candidate):
            return candidate
    return None


_configured = False
_configure_lock = threading.Lock()


def configure_numba():
    """Import numba with the cache directory set up; returns the ``numba`` module.

    Called lazily by the kernel dispatchers, never at ``import fixres_edge``.
    """
    global _configured
    if _configured:
        import numba

        return numba
    with _configure_lock:
        cache_dir = choose_cache_dir()
        if cache_dir is not None:
            # Before numba reads its config (first import) the environment is enough; if the
            # application imported numba already, its live config is updated too.
            os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_dir))
        # GNU OpenMP workers spin for a long while (300000 spins) after each parallel kernel and
        # take the cores ONNX Runtime's own workers need: with 2 threads a predict measured
        # 12.8 ms instead of 4.8 ms. Fully passive workers cost a wake-up per launch (2-thread
        # preprocess 225 us instead of 109 us). A short spin keeps back-to-back launches hot and
        # lets the workers sleep before inference starts. Only when the user has not chosen, and
        # before Numba's OpenMP layer is loaded.
        if "OMP_WAIT_POLICY" not in os.environ:
            os.environ.setdefault("GOMP_SPINCOUNT", GOMP_SPINCOUNT)
        import numba
        import numba.core.config

        if cache_dir is not None and not numba.core.config.CACHE_DIR:
            numba.core.config.CACHE_DIR = str(cache_dir)
        _configured = True
        return numba


def jit_disabled() -> bool:
    """True when ``NUMBA_DISABLE_JIT=1``: kernels then run as plain Python (tests use it)."""
    return os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")


def _renamed_copy(fn: Callable, suffix: str) -> Callable:
    """A copy of ``fn`` under another name.

    Numba names cache files after the function's qualified name and does not include compile
    flags in the cache index, so the serial and parallel builds of one source must carry
    different names or they would load each other's machine code.
    """
    copy = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix, fn.__defaults__, fn.__closure__)
    copy.__qualname__ = fn.__qualname__ + suffix
    copy.__module__ = fn.__module__
    copy.__doc__ = fn.__doc__
    copy.__kwdefaults__ = fn.__kwdefaults__
    return copy


class _LazyDispatcher:
    """Wraps a Python function; builds the Numba dispatcher on first use (not at import)."""

    def __init__(self, fn: Callable, parallel: bool):
        self._fn = fn
        self._parallel = parallel
        self._dispatcher = None
        self._lock = threading.Lock()
        self.__name__ = fn.__name__
        self.__doc__ = fn.__doc__

    @property
    def dispatcher(self):
        if self._dispatcher is None:
            with self._lock:
                if self._dispatcher is None:
                    numba = configure_numba()
                    self._dispatcher = numba.njit(parallel=self._parallel, **JIT_OPTIONS)(self._fn)
        return self._dispatcher

    def __call__(self, *args):
        return self.dispatcher(*args)

    @property
    def signatures(self):
        return [] if self._dispatcher is None else list(self._dispatcher.signatures)


@dataclass(frozen=True)
class KernelPair:
    """Serial and parallel builds of one kernel source.

    The parallel build splits its work over ``prange``; callers pass the number of chunks (never
    read inside the kernel with ``get_num_threads``, which would make it uncacheable).
    """

    serial: _LazyDispatcher
    parallel: _LazyDispatcher


def kernel(fn: Callable) -> KernelPair:
    """Declare ``fn`` as a kernel: returns its serial and parallel builds (compiled lazily)."""
    return KernelPair(
        serial=_LazyDispatcher(fn, parallel=False),
        parallel=_LazyDispatcher(_renamed_copy(fn, "_parallel"), parallel=True),
    )


def serial_kernel(fn: Callable) -> _LazyDispatcher:
    """Declare a kernel that only ever runs on one thread (compiled lazily, cached, GIL released)."""
    return _LazyDispatcher(fn, parallel=False)


def helper(fn: Callable, inline: bool = True) -> Callable:
    """Declare a helper called from kernels (``njit`` with the same options; inlined by default).

    Helpers must live in the same file as the kernels that call them: the cache only notices
    edits to the kernel's own file.
    """
    if jit_disabled():
        return fn
    numba = configure_numba()
    return numba.njit(inline="always" if inline else "never", **JIT_OPTIONS)(fn)


# One parallel kernel runs at a time in the process: Numba's default "workqueue" threading layer
# is not safe for concurrent parallel launches from several Python threads. Serial kernels never
# take this lock.
PARALLEL_LAUNCH_LOCK = threading.Lock()


class thread_count:
    """Context manager: run Numba's parallel kernels on ``n`` threads inside the block.

    Numba's thread count is thread-local, and it is restored in ``finally`` so global settings are
    left as they were.
    """

    def __init__(self, n: int):
        self._n = n
        self._previous: int | None = None

    def __enter__(self):
        numba = configure_numba()
        wanted = min(self._n, numba.config.NUMBA_NUM_THREADS)
        current = numba.get_num_threads()
        # Only when it changes: set_num_threads costs ~10 us on a cold call (measured after 2 ms of
        # other work), a fifth of a whole 2-thread preprocess.
        if current != wanted:
            self._previous = current
            numba.set_num_threads(wanted)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            configure_numba().set_num_threads(self._previous)
            self._previous = None
        return False


def max_threads() -> int:
    """The most threads a parallel kernel may use (Numba's ``NUMBA_NUM_THREADS``)."""
    return configure_numba().config.NUMBA_NUM_THREADS
