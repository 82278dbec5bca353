"""The one place that decides how kernels are compiled, cached and found.

Kernels are declared with :func:`entry` (a C-callable kernel entry that takes one pointer to its
launch record, ``fixres_edge.kernels.launch``) and :func:`helper` (functions the entries call).
:func:`kernel` returns a callable for a kernel by name, from the first of:

1. plain Python, when ``NUMBA_DISABLE_JIT=1`` (tests use it);
2. the ahead-of-time module built by ``fixres-edge warmup`` (``fixres_edge._aot``): the same
   kernel source compiled for this CPU into a shared library, loaded with ctypes: neither numba
   nor llvmlite is imported;
3. Numba's JIT (the development path and the fallback), cached per user.

Either way the entry is called through ctypes, which releases the GIL; kernels run on the
calling thread, so one ``Preprocessor`` can serve many threads.

Why each option (``JIT_OPTIONS``, plus what each entry adds next to its declaration):

* ``cache=True``: a cold compile costs seconds per kernel; a warm cache loads in milliseconds.
  The cache lives in the per-user cache directory, never in the installed package (pip leaves
  such files behind, and a stale ``kernels/__pycache__`` shadowed an editable install), in a
  folder named after the kernel sources' digest: Numba itself only notices edits to a kernel's
  own file, not to the helpers and records it uses from other files. An explicit
  ``NUMBA_CACHE_DIR`` is honoured as it is.
* ``boundscheck=False`` and ``error_model="numpy"``: no exception paths in the inner loops, which
  lets LLVM vectorize them. Kernels only index with ranges the planner proved valid
  (``launch.pack`` checks the arrays against them).
* ``fastmath`` limited to contraction (FMA), for entries and helpers alike (a helper compiled on
  its own, such as ``_bgr_row_pairs``, would otherwise lose it): no reassociation, so results do
  not depend on how LLVM schedules a loop.
* Lazy: nothing compiles (or imports numba) at import; :func:`fixres_edge.warmup` compiles.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import sys
import threading
from pathlib import Path
from typing import Any, Callable

_PACKAGE_DIR = Path(__file__).resolve().parent

JIT_OPTIONS: dict[str, Any] = {
    "cache": True,
    "boundscheck": False,
    "error_model": "numpy",
    "fastmath": {"contract"},
}

# Kernel name -> module under fixres_edge.kernels that declares it.
KERNELS = {
    "interleaved": "resample",
    "pillow_order": "resample",
    "yuv": "resample",
    "probabilities_top_k": "postprocess",
}


def jit_disabled() -> bool:
    """True when ``NUMBA_DISABLE_JIT=1``: kernels then run as plain Python (tests use it)."""
    return os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")


# ---------------------------------------------------------------------- where things live
def user_cache_dir() -> Path:
    """The per-user cache directory of fixres_edge (XDG on Linux, ~/Library/Caches on macOS).

    ``FIXRES_EDGE_CACHE_DIR`` overrides it (e.g. a writable folder on a read-only system).
    """
    explicit = os.environ.get("FIXRES_EDGE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "fixres_edge"


def kernel_sources() -> list[Path]:
    """The files whose text makes the compiled kernels: the kernels package and this module."""
    return sorted((_PACKAGE_DIR / "kernels").glob("*.py")) + [Path(__file__).resolve()]


_digest: str | None = None


def kernel_source_digest() -> str:
    """SHA-256 of the kernel sources (names and bytes): what a compiled kernel was built from."""
    global _digest
    if _digest is None:
        h = hashlib.sha256()
        for path in kernel_sources():
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        _digest = h.hexdigest()
    return _digest


def jit_cache_dir() -> Path:
    """Where Numba caches the kernels: ``NUMBA_CACHE_DIR`` if set, else the user cache directory."""
    explicit = os.environ.get("NUMBA_CACHE_DIR")
    if explicit:
        return Path(explicit)
    return user_cache_dir() / "jit" / kernel_source_digest()[:16]


_configured = False
_configure_lock = threading.Lock()


def configure_numba():
    """Import numba with the kernel cache directory set up; returns the ``numba`` module.

    Called when the kernel modules are first imported (only on the JIT path: a process that
    loads the ahead-of-time module never calls it), never at ``import fixres_edge``. Numba has one
    cache directory per process: when the application did not choose one, this sets it.
    """
    global _configured
    with _configure_lock:
        if not _configured:
            cache_dir = str(jit_cache_dir())
            # Before numba reads its config (first import) the environment is enough; if the
            # application imported numba already, its live config is updated too.
            os.environ.setdefault("NUMBA_CACHE_DIR", cache_dir)
            import numba.core.config

            if not numba.core.config.CACHE_DIR:
                numba.core.config.CACHE_DIR = cache_dir
            _configured = True
    import numba

    return numba


# ---------------------------------------------------------------------- declaring kernels
def helper(fn: Callable, inline: bool = True) -> Callable:
    """Declare a function the entries call (``njit``, inlined by default; plain Python without JIT).

    Helpers live in the same file as the entries that call them, so that Numba's own cache
    check sees their edits too.
    """
    if jit_disabled():
        return fn
    numba = configure_numba()
    return numba.njit(inline="always" if inline else "never", **JIT_OPTIONS)(fn)


class Entry:
    """A kernel entry: ``void fn(LaunchRecord *)``, compiled on first use (never at import)."""

    def __init__(self, fn: Callable, launch_class: type, options: dict[str, Any]):
        self.python = fn
        self.launch_class = launch_class
        self.options = {**JIT_OPTIONS, **options}
        self.name = fn.__name__.lstrip("_")
        self._cfunc = None
        self._lock = threading.Lock()

    def signature(self):
        """The Numba signature ``void(CPointer(record))`` of this entry."""
        numba = configure_numba()
        from fixres_edge.kernels.launch import record_dtype

        record = numba.from_dtype(record_dtype(self.launch_class))
        return numba.types.void(numba.types.CPointer(record))

    def compile(self, cache: bool = True):
        """The ``numba.cfunc`` of this entry (cached compile, or a fresh one whose LLVM IR can be read)."""
        numba = configure_numba()
        return numba.cfunc(self.signature(), **{**self.options, "cache": cache})(self.python)

    def cfunc(self):
        if self._cfunc is None:
            with self._lock:
                if self._cfunc is None:
                    self._cfunc = self.compile()
        return self._cfunc


def entry(fn: Callable, launch_class: type, **options) -> Entry:
    """Declare ``fn(address)`` as a kernel entry taking a ``launch_class`` record; ``options``
    are its Numba options on top of :data:`JIT_OPTIONS`."""
    return Entry(fn, launch_class, options)


def entries() -> dict[str, Entry]:
    """Every kernel entry by name (imports the kernel modules, hence numba)."""
    import importlib

    found = {}
    for name, module in KERNELS.items():
        found[name] = getattr(importlib.import_module(f"fixres_edge.kernels.{module}"), name)
    return found


# ---------------------------------------------------------------------- finding kernels
_ENTRY_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_kernels: dict[str, Callable] = {}
_backend: str | None = None
_kernels_lock = threading.Lock()


def _python_kernel(name: str) -> Callable:
    import numpy as np

    fn = entries()[name].python
    return lambda packed: fn(packed.record.view(np.recarray))


def _native_kernel(function) -> Callable:
    return lambda packed: function(packed.address)


def kernel(name: str) -> Callable:
    """The kernel ``name`` as ``call(packed_launch)``: Python, ahead-of-time, or JIT (see the module doc)."""
    found = _kernels.get(name)
    if found is not None:
        return found
    global _backend
    with _kernels_lock:
        if name not in _kernels:
            if jit_disabled():
                _kernels[name], _backend = _python_kernel(name), "python (NUMBA_DISABLE_JIT)"
            else:
                from fixres_edge import _aot

                module = _aot.load()
                if module is not None and name in module.functions:
                    _kernels[name], _backend = _native_kernel(module.functions[name]), f"aot ({module.path})"
                else:
                    compiled = entries()[name].cfunc()
                    _kernels[name], _backend = _native_kernel(_ENTRY_TYPE(compiled.address)), "jit"
        return _kernels[name]


def kernel_backend() -> str:
    """Which kernels this process runs: ``"aot (<library>)"``, ``"jit"`` or ``"python (...)"``.

    Decided by the first kernel call (it loads the ahead-of-time module or the JIT); before that,
    what the first call will use.
    """
    if _backend is not None:
        return _backend
    if jit_disabled():
        return "python (NUMBA_DISABLE_JIT)"
    from fixres_edge import _aot

    module = _aot.load()
    return f"aot ({module.path})" if module is not None else "jit"


def backend_kernels(backend: str) -> dict[str, Callable]:
    """Every kernel of one backend, ``"aot"`` or ``"jit"``, as :func:`kernel` returns them.

    For side-by-side comparisons (the benchmarks, the tests) with :func:`kernels_from`.

    Raises
    ------
    ValueError
        For another name, or ``"aot"`` when there is no usable ahead-of-time module.
    """
    if backend == "jit":
        return {name: _native_kernel(_ENTRY_TYPE(declared.cfunc().address)) for name, declared in entries().items()}
    if backend == "aot":
        from fixres_edge import _aot

        module = _aot.load()
        if module is None:
            raise ValueError("no usable ahead-of-time module: run `fixres-edge warmup` first")
        return {name: _native_kernel(function) for name, function in module.functions.items()}
    raise ValueError(f"unknown kernel backend {backend!r}; valid: 'aot', 'jit'")


class kernels_from:
    """Context manager: :func:`kernel` returns these kernels (name -> callable) inside the block.

    A launch binds its kernel when it is prepared, so a ``Preprocessor`` first called inside the
    block keeps these kernels for the geometries it prepared there.
    """

    def __init__(self, kernels: dict[str, Callable]):
        self._kernels = kernels
        self._saved: dict[str, Callable] = {}

    def __enter__(self):
        with _kernels_lock:
            self._saved = dict(_kernels)
            _kernels.clear()
            _kernels.update(self._kernels)
        return self

    def __exit__(self, *exc):
        with _kernels_lock:
            _kernels.clear()
            _kernels.update(self._saved)
        return False


def reset_kernels() -> None:
    """Forget the kernels found so far (after building or removing the ahead-of-time module)."""
    global _backend
    with _kernels_lock:
        _kernels.clear()
        _backend = None
    from fixres_edge import _aot

    _aot.forget()
