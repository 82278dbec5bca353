"""Ahead-of-time kernels: the Numba kernel entries compiled for this CPU into a shared library.

Why this mechanism. A deployed process (often one per photo) should not pay for the JIT:
``import numba`` and LLVM loading cached kernels cost most of the start-up and about 100 MB.
The options were:

* ``numba.pycc``: pending deprecation, needs the Python headers, and its exports are CPython
  functions that hold the GIL, so kernels could no longer run beside other threads.
* this one: each kernel entry is already a C function (``numba.cfunc`` taking a pointer to its
  launch record). :func:`build` takes the LLVM IR Numba produces for each entry, makes every
  symbol but the entry internal, emits one position-independent object for this CPU with
  llvmlite, and links it with the system C compiler into ``kernels.so`` together with a few
  lines of C (:data:`_SHIM_C`) for the symbols Numba's error path names. :func:`load` opens it
  with ctypes (which releases the GIL around each call): no numba, no llvmlite, no compiler.

It is the same source and the same LLVM IR as the JIT, so results are identical (the tests
compare them bit for bit). Everything that touches Numba internals is inside :func:`build`;
if a future Numba changes them, the build fails with one line and the JIT stays in use.

A manifest beside the library records what it was built from: the kernel sources' digest, this
CPU, the library's own digest and the entry symbols. :func:`load` ignores a library that is stale
(other kernel source), foreign (another CPU) or corrupt, with one line on stderr, and the JIT is
used: never a crash, never wrong output.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from fixres_edge._jit import kernel_source_digest, user_cache_dir

FORMAT = 1
LIBRARY = "kernels.so"
MANIFEST = "kernels.json"

# The kernels never raise (boundscheck off, error_model="numpy", arrays checked by launch.pack),
# but Numba's code for a cfunc still names its error path: the wrapper reports exceptions through
# the GIL helpers, raising goes through the other helpers, and array views name NRT's allocator.
# In a JIT process Numba's own runtime provides them; here the GIL helpers are real and the rest,
# unreachable, fail safely (no exception object, an error status).
_SHIM_C = r"""
#include <stddef.h>
extern int PyGILState_Ensure(void);
extern void PyGILState_Release(int);
void numba_gil_ensure(int *state) { *state = PyGILState_Ensure(); }
void numba_gil_release(int *state) { PyGILState_Release(*state); }
void NRT_MemInfo_call_dtor(void *meminfo) { (void)meminfo; }
void NRT_Free(void *pointer) { (void)pointer; }
void *numba_unpickle(const char *data, int n, const char *hashed) { (void)data; (void)n; (void)hashed; return NULL; }
void *numba_runtime_build_excinfo_struct(void *a, void *b) { (void)a; (void)b; return NULL; }
int numba_do_raise(void *exc) { (void)exc; return -1; }
"""


def aot_dir() -> Path:
    """Where the ahead-of-time module lives: ``<user cache>/aot`` (``FIXRES_EDGE_CACHE_DIR`` moves it)."""
    return user_cache_dir() / "aot"


def cpu_fingerprint() -> str:
    """This CPU, read without LLVM: architecture plus the model and feature lines of /proc/cpuinfo.

    The library is compiled for the CPU's own features: another CPU must not load it.
    """
    uname = os.uname()
    parts = [uname.machine, uname.sysname]
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:  # not Linux: the processor string is what there is
        import platform

        text = platform.processor()
    keys = ("model name", "flags", "features", "cpu implementer", "cpu part", "cpu variant", "isa")
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in keys:
            parts.append(f"{key.strip().lower()}={value.strip()}")
    # One entry per core: keep the distinct lines (big.LITTLE boards have two kinds).
    return hashlib.sha256("\n".join(sorted(set(parts), key=parts.index)).encode()).hexdigest()


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class AotModule:
    """A loaded ahead-of-time module: its path and one ctypes function per kernel name."""

    path: Path
    functions: dict


_loaded: AotModule | None = None
_looked = False
_lock = threading.Lock()


def _notice(message: str) -> None:
    """The one line on stderr when the module exists but cannot be used (a warning would take two)."""
    sys.stderr.write(f"fixres_edge: {message}; using the JIT (run `fixres-edge warmup` to rebuild)\n")


def _check(directory: Path) -> tuple[dict | None, str | None]:
    """The manifest of the module in ``directory`` and, when it must not be used, why."""
    manifest_path = directory / MANIFEST
    library = directory / LIBRARY
    if not manifest_path.exists() and not library.exists():
        return None, None  # never built: the JIT, silently
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            return None, f"ignoring the ahead-of-time kernels in {directory}: unknown format"
        if manifest.get("source_digest") != kernel_source_digest():
            return None, f"ignoring the ahead-of-time kernels in {directory}: built from other kernel source"
        if manifest.get("cpu") != cpu_fingerprint():
            return None, f"ignoring the ahead-of-time kernels in {directory}: built for another CPU"
        if manifest.get("library_digest") != _file_digest(library):
            return None, f"ignoring the ahead-of-time kernels in {directory}: {LIBRARY} is corrupt"
        if not isinstance(manifest.get("entries"), dict):
            return None, f"ignoring the ahead-of-time kernels in {directory}: no entries"
    except (OSError, ValueError) as error:
        return None, f"ignoring the ahead-of-time kernels in {directory}: {type(error).__name__}: {error}"
    return manifest, None


def load(directory: Path | None = None) -> AotModule | None:
    """The ahead-of-time module of this kernel source and CPU, or None (the JIT is then used).

    Looked up once per process (for the default directory). A module that exists but cannot be
    used is reported with one line on stderr.
    """
    global _loaded, _looked
    if directory is None and _looked:
        return _loaded
    with _lock:
        if directory is None and _looked:
            return _loaded
        where = aot_dir() if directory is None else Path(directory)
        module = None
        manifest, problem = _check(where)
        if manifest is not None:
            try:
                library = ctypes.CDLL(str(where / LIBRARY))
                functions = {}
                for name, symbol in manifest["entries"].items():
                    function = library[symbol]
                    function.argtypes = [ctypes.c_void_p]
                    function.restype = None
                    functions[name] = function
                module = AotModule(where / LIBRARY, functions)
            except (OSError, AttributeError, TypeError) as error:
                problem = f"ignoring the ahead-of-time kernels in {where}: {str(error).splitlines()[0]}"
        if problem:
            _notice(problem)
        if directory is None:
            _loaded, _looked = module, True
        return module


def forget() -> None:
    """Look for the module again on the next :func:`load` (after a build or a removal)."""
    global _loaded, _looked
    with _lock:
        _loaded, _looked = None, False


# ---------------------------------------------------------------------- building
class BuildError(RuntimeError):
    """The ahead-of-time module could not be built (no compiler, a Numba change, ...)."""


def compiler() -> str | None:
    """The C compiler used to link the module: ``$CC``, else ``cc``, ``gcc`` or ``clang`` on PATH."""
    import shutil

    for candidate in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if candidate and shutil.which(candidate.split()[0]):
            return candidate
    return None


def _object_code(cfuncs: dict) -> tuple[bytes, dict[str, str], str]:
    """One position-independent object for this CPU holding every entry; ``(object, symbols, cpu)``."""
    import llvmlite.binding as llvm

    try:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
    except RuntimeError:
        pass  # already initialized by Numba, or an llvmlite that initializes itself
    merged = None
    symbols = {}
    for name, compiled in cfuncs.items():
        symbol = compiled.native_name
        module = llvm.parse_assembly(compiled.inspect_llvm())
        # Only the entry stays visible: helpers and Numba's runtime pieces are compiled into every
        # entry's module under the same names and must not clash when the modules are linked.
        for function in module.functions:
            if not function.is_declaration and function.name != symbol:
                function.linkage = "internal"
        for variable in module.global_variables:
            if not variable.is_declaration:
                variable.linkage = "internal"
        symbols[name] = symbol
        if merged is None:
            merged = module
        else:
            merged.link_in(module)
    merged.verify()
    # The CPU, features and optimization level Numba's JIT uses here (it honours NUMBA_CPU_NAME,
    # NUMBA_CPU_FEATURES, NUMBA_ENABLE_AVX and NUMBA_OPT), so both paths make the same code.
    from numba.core import codegen, config

    cpu = config.CPU_NAME or llvm.get_host_cpu_name()
    features = config.CPU_FEATURES if config.CPU_FEATURES is not None else codegen.get_host_cpu_features()
    target = llvm.Target.from_default_triple()
    machine = target.create_target_machine(cpu=cpu, features=features, opt=int(config.OPT), reloc="pic",
                                           codemodel="default")
    return machine.emit_object(merged), symbols, cpu


def build(directory: Path | None = None) -> Path:
    """Compile every kernel entry for this CPU into ``kernels.so`` (and its manifest); returns its path.

    Needs numba, llvmlite and a C compiler (only here, never to load). The previous module is
    replaced atomically, so a running process keeps the one it loaded.

    Raises
    ------
    BuildError
        With one line saying why (no compiler, compilation or link failure).
    """
    import subprocess
    import tempfile
    import time

    cc = compiler()
    if cc is None:
        raise BuildError("no C compiler (cc, gcc or clang) to link the ahead-of-time kernels; the JIT is used")
    where = aot_dir() if directory is None else Path(directory)
    start = time.perf_counter()
    try:
        from fixres_edge._jit import entries

        # Fresh compiles: Numba does not keep the LLVM IR of kernels loaded from its cache.
        cfuncs = {name: declared.compile(cache=False) for name, declared in entries().items()}
        obj, symbols, cpu = _object_code(cfuncs)
    except BuildError:
        raise
    except Exception as error:  # noqa: BLE001 - a Numba/llvmlite internals change must not break the product
        raise BuildError(f"compiling the ahead-of-time kernels failed ({type(error).__name__}: "
                         f"{str(error).strip().splitlines()[0] if str(error).strip() else ''}); the JIT is used") from error
    compiled_s = time.perf_counter() - start
    where.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        tmp = Path(tmp)
        (tmp / "kernels.o").write_bytes(obj)
        (tmp / "shim.c").write_text(_SHIM_C)
        command = [*cc.split(), "-shared", "-fPIC", "-O2", "-o", str(tmp / LIBRARY), str(tmp / "kernels.o"),
                   str(tmp / "shim.c"), "-lm"]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            detail = (result.stderr.strip().splitlines() or ["no output"])[0]
            raise BuildError(f"linking the ahead-of-time kernels with {cc} failed: {detail}; the JIT is used")
        try:
            library = ctypes.CDLL(str(tmp / LIBRARY))
            for symbol in symbols.values():
                library[symbol]
        except (OSError, AttributeError) as error:
            raise BuildError(f"the ahead-of-time kernels do not load ({str(error).splitlines()[0]}); "
                             "the JIT is used") from None
        import llvmlite
        import numba

        manifest = {
            "format": FORMAT,
            "source_digest": kernel_source_digest(),
            "cpu": cpu_fingerprint(),
            "llvm_cpu": cpu,
            "machine": os.uname().machine,
            "numba": numba.__version__,
            "llvmlite": llvmlite.__version__,
            "library_digest": _file_digest(tmp / LIBRARY),
            "entries": symbols,
            "compile_seconds": round(compiled_s, 2),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        # The library first, then its manifest: a reader sees the old pair, or a new library whose
        # digest does not match the old manifest (ignored with a notice), never a wrong kernel.
        os.replace(tmp / LIBRARY, where / LIBRARY)
        os.replace(tmp / MANIFEST, where / MANIFEST)
    forget()
    return where / LIBRARY
