"""Helper threads that take bands of output rows of a preprocessing call beside the calling thread.

Why not Numba's OpenMP workers (``prange``): they sleep between calls, and a launch wakes them
before the caller starts on its own rows. On the 2-vCPU test VM, after 2 ms of other work, that
wake-up held the caller for 18-47 us and the worker started about 70 us into a call whose serial
time is about 100 us, so two threads were slower than one. Here:

* the caller announces a job with a plain store and starts on its own rows at once;
* helpers notice it by polling between short sleeps (``kernels.resample.poll``, without the GIL):
  about every 30 us for about 2 ms after their last job, then every millisecond for about
  a second, then they block on an event that the next call sets after its own work (that call
  runs alone);
* rows are taken in bands from a ticketed counter (``kernels.resample._claim_band``): a late
  helper takes what is left, and one that arrives after the call ended takes nothing. The caller
  never waits for a helper to arrive, only for a band a helper is writing.

One caller owns the helpers at a time; a concurrent caller (another Python thread) runs its call
alone instead of waiting. Helpers are daemon threads, stopped at exit and re-created after a fork.
"""
from __future__ import annotations

import atexit
import ctypes
import os
import sys
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

# Output rows per band: 14 bands at 224, small enough that a late helper still finds work and
# large enough for the kernel's row pairs.
BAND_ROWS = 16


@dataclass(frozen=True)
class PollPolicy:
    """How helpers wait for the next job.

    One poll costs about 30 us of wall time at ``fast_period_us=5`` on the test VM (the sleep's
    own overhead dominates), so the fast phase lasts about 2 ms: longer than the gaps between
    calls in a burst (a batch, a benchmark loop), shorter than a model's inference. It is not
    free for the other core: a thread that polls this often measured 20-35 % slower one-thread
    calls on the other vCPU of the test VM, so the phase is kept short. The slow phase (about one
    wake-up per millisecond) spares a steady stream the wake-up system call; after it, an idle
    helper costs nothing.
    """

    fast_period_us: int = 5
    fast_polls: int = 60
    slow_period_us: int = 1000
    slow_polls: int = 1000


def band_count(out_h: int) -> int:
    """Bands of about ``BAND_ROWS`` rows that the threads of one call share."""
    return max(1, (out_h + BAND_ROWS - 1) // BAND_ROWS)


class BandHelpers:
    """A set of helper threads; ``run`` splits one kernel call between the caller and them.

    The kernel must follow ``kernels.resample._resample_interleaved``'s protocol: its last seven
    arguments are ``work, ticket, n_bands, scratch_row, wait_for_helpers, posted, schedule``, and
    in a helper it returns whether a new job is running (it waits for one as ``_poll`` does).
    """

    def __init__(self, policy: PollPolicy = PollPolicy(), max_helpers: int | None = None):
        self.policy = policy
        self.max_helpers = max_helpers
        # Tickets of the latest job announced and finished; announced = -1 asks helpers to stop.
        self._posted = np.zeros(2, np.int64)
        # Wait schedules (see ``kernels.resample._poll``): fast then slow polls when idle; only the
        # fast ones inside the kernel after a job, which holds the job's arrays while it waits.
        self._schedule = np.array([policy.fast_period_us, policy.fast_polls, policy.slow_period_us,
                                   policy.slow_polls], np.int64)
        self._after_job = np.array([policy.fast_period_us, policy.fast_polls, 0, 0], np.int64)
        self._slow_only = np.array([0, 0, policy.slow_period_us, policy.slow_polls], np.int64)
        self._job: tuple | None = None
        self._ticket = 0
        self._owner = threading.Lock()  # held by the one caller whose job the helpers serve
        self._state = threading.Lock()
        self._wake = threading.Event()
        self._blocked = 0
        self._stopping = False
        self._threads: list[threading.Thread] = []
        # Per helper: jobs it took part in (for tests and diagnostics; each written by one thread).
        self.joined: list[int] = []
        self.last_error: Exception | None = None

    def run(self, kernel: Callable, head: tuple, scratch: np.ndarray, threads: int, work: np.ndarray,
            n_bands: int) -> None:
        """Run ``kernel(*head, work, ticket, n_bands, scratch[i], i == 0, ...)`` on the calling thread
        (``i = 0``) and up to ``threads - 1`` helpers; returns when every row is written.

        ``scratch`` has one row per thread and ``work`` is an int64 array of 2 owned by the caller.
        """
        if threads < 2 or n_bands < 2 or not self._owner.acquire(blocking=False):
            kernel(*head, work, 0, 1, scratch[0], True, self._posted, self._schedule)
            return
        try:
            helpers = self._start(threads - 1)
            self._ticket = ticket = self._ticket % 0x7FFFFFFF + 1
            work[0] = ticket << 32  # band 0 of this ticket
            work[1] = 0  # bands done
            self._job = (ticket, kernel, head, scratch, helpers, work, n_bands)
            self._posted[0] = ticket  # the announcement: helpers poll this
            kernel(*head, work, ticket, n_bands, scratch[0], True, self._posted, self._schedule)
        finally:
            self._posted[1] = self._ticket  # finished: a helper that notices it now skips it
            self._job = None  # no reference to the caller's arrays outlives the call
            self._owner.release()
        if self._blocked:
            self._wake.set()  # after the work: this costs a system call (tens of us on a VM)

    def _start(self, wanted: int) -> int:
        """Start helpers up to ``wanted`` (capped by ``max_helpers``); returns how many there are."""
        if self.max_helpers is not None:
            wanted = min(wanted, self.max_helpers)
        while len(self._threads) < wanted:
            index = len(self._threads) + 1
            self.joined.append(0)
            thread = threading.Thread(target=self._serve, args=(index,), name=f"fixres_edge-helper-{index}",
                                      daemon=True)
            self._threads.append(thread)
            thread.start()
        return min(wanted, len(self._threads))

    def _serve(self, index: int) -> None:
        from fixres_edge.kernels import resample

        poll = resample.poll.dispatcher
        _short_timer_slack()
        posted = self._posted
        schedule = self._schedule
        seen = int(posted[0])
        while not self._stopping:
            if not poll(posted, seen, schedule):
                self._block()
                schedule = self._schedule
                continue
            # Jobs back to back: after its bands the kernel waits for the next running job
            # itself, so this thread takes the GIL only while a caller is inside its kernel.
            while True:
                seen = int(posted[0])
                job = self._job
                if job is None or job[0] != seen or index > job[4]:
                    # The job ended before this helper looked, or does not need it.
                    schedule = self._schedule
                    break
                ticket, kernel, head, scratch, _, work, n_bands = job
                del job
                try:
                    running = kernel(*head, work, ticket, n_bands, scratch[index], False, posted, self._after_job)
                except Exception as error:  # pragma: no cover - a dispatch error before any band is taken
                    # The caller writes every band nobody took, so its result is unaffected; keep
                    # the error for diagnosis and stay available.
                    self.last_error = error
                    running = False
                else:
                    self.joined[index - 1] += 1
                del head, scratch, work  # drop the caller's arrays before waiting again
                if not running:
                    schedule = self._slow_only  # the kernel spent the fast polls
                    break

    def _block(self) -> None:
        """Sleep until a call sets the event (it does so after its own work, see ``run``)."""
        with self._state:
            self._blocked += 1
        self._wake.wait()
        with self._state:
            self._blocked -= 1
            if self._blocked == 0:
                self._wake.clear()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the helpers (at exit: none may run compiled code while the interpreter tears down)."""
        self._stopping = True
        self._posted[:] = (-1, 0)
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)


def _short_timer_slack() -> None:
    """Linux delays a sleeping thread's wake-up by its timer slack (50 us by default), which would
    turn a 5 us poll into 55+ us; 1 us for this thread only."""
    if not sys.platform.startswith("linux"):
        return
    try:
        pr_set_timerslack = 29
        ctypes.CDLL(None).prctl(pr_set_timerslack, ctypes.c_ulong(1000), ctypes.c_ulong(0), ctypes.c_ulong(0),
                                ctypes.c_ulong(0))
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


_helpers: BandHelpers | None = None
_helpers_lock = threading.Lock()


def band_helpers() -> BandHelpers:
    """The process's helpers (created on first use, capped by Numba's thread count)."""
    global _helpers
    helpers = _helpers
    if helpers is None:
        with _helpers_lock:
            if _helpers is None:
                from fixres_edge._jit import max_threads

                _helpers = BandHelpers(max_helpers=max_threads() - 1)
                atexit.register(_helpers.stop)
            helpers = _helpers
    return helpers


def _forget_after_fork() -> None:
    # Threads do not survive a fork; the child starts its own helpers when it needs them.
    global _helpers, _helpers_lock
    _helpers = None
    _helpers_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
