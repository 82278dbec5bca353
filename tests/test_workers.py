"""Band helpers (``fixres_edge.workers``): several threads share one call and give the serial result.

Which thread writes which band depends on scheduling, so the tests check what must hold whatever
the split: the output equals the one-thread output, a helper holding an old ticket writes nothing,
and a caller that cannot own the helpers runs alone. Timing is never asserted.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from fixres_edge import Preprocessor
from fixres_edge.kernels import resample
from fixres_edge.workers import BandHelpers, PollPolicy, band_count


NO_POLLS = np.zeros(4, np.int64)  # a helper's wait schedule with no polls: return right after the bands


def _photo(h: int = 375, w: int = 500, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = cv_like_blur(rng.integers(0, 256, (h, w, 3)).astype(np.float32))
    return np.clip(smooth, 0, 255).astype(np.uint8)


def cv_like_blur(a: np.ndarray) -> np.ndarray:
    # A cheap box blur so that the image has structure as well as noise.
    return (a + np.roll(a, 1, 0) + np.roll(a, 1, 1) + np.roll(a, -1, 0)) / 4


def _launch(pre: Preprocessor, image: np.ndarray):
    flat, launch = pre._prepare(image, "BGR", (0, 0))
    return flat, launch


def _kernel_args(launch, flat, out):
    return (flat, *launch.before, out[0], out[0], launch.direct)


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("size", [224, 40, 17])
def test_helpers_give_the_one_thread_result(threads, size):
    image = _photo()
    one = Preprocessor(size=size, threads=1)(image)
    pre = Preprocessor(size=size, threads=threads)
    for _ in range(30):  # helpers join some calls and not others: every split must agree
        np.testing.assert_array_equal(pre(image), one)


@pytest.mark.parametrize("kw", [dict(input_format="RGB", dtype="uint8", layout="NHWC"),
                                dict(input_format="GRAY", dtype="float16"),
                                dict(input_format="BGRA", antialias=False)], ids=str)
def test_helpers_with_other_formats_and_outputs(kw):
    image = _photo()
    if kw.get("input_format") == "GRAY":
        image = image[..., 0]
    elif kw.get("input_format") == "BGRA":
        image = np.dstack([image, image[..., :1]])
    one = Preprocessor(threads=1, **kw)(image)
    pre = Preprocessor(threads=2, **kw)
    for _ in range(10):
        np.testing.assert_array_equal(pre(image), one)


@pytest.mark.aarch64
def test_two_threads_racing_for_bands_write_every_band_once():
    """The caller and a 'helper' start together on one job; whatever the split, all bands are done."""
    image = _photo(1500, 2000, seed=1)
    pre = Preprocessor(size=1000, crop_pct=1.0, threads=2)
    expected = Preprocessor(size=1000, crop_pct=1.0, threads=1)(image)
    flat, launch = _launch(pre, image)
    n_bands = band_count(1000)
    for trial in range(3):
        out = np.full((1, 3, 1000, 1000), np.nan, np.float32)
        args = _kernel_args(launch, flat, out)
        work = launch.work
        ticket = 100 + trial
        work[0] = ticket << 32
        work[1] = 0
        start = threading.Barrier(2)

        def helper():
            start.wait()
            launch.kernel(*args, work, ticket, n_bands, launch.scratch[1], False, work, NO_POLLS)

        thread = threading.Thread(target=helper)
        thread.start()
        start.wait()
        launch.kernel(*args, work, ticket, n_bands, launch.scratch[0], True, work, NO_POLLS)
        thread.join()
        assert work[1] == n_bands
        np.testing.assert_array_equal(out, expected)


@pytest.mark.aarch64
def test_a_helper_with_an_old_ticket_writes_nothing():
    image = _photo()
    pre = Preprocessor(threads=2)
    flat, launch = _launch(pre, image)
    out = np.zeros((1, 3, 224, 224), np.float32)
    args = _kernel_args(launch, flat, out)
    work = launch.work
    n_bands = band_count(224)
    # Job 7 ran to the end; job 8 is announced but not started.
    work[0] = 7 << 32
    work[1] = 0
    launch.kernel(*args, work, 7, n_bands, launch.scratch[0], True, work, NO_POLLS)
    out[...] = -1.0
    launch.kernel(*args, work, 7, n_bands, launch.scratch[1], False, work, NO_POLLS)  # late helper, job 7 finished
    assert (out == -1.0).all()
    work[0] = 8 << 32
    work[1] = 0
    launch.kernel(*args, work, 7, n_bands, launch.scratch[1], False, work, NO_POLLS)  # late helper, job 8 announced
    assert (out == -1.0).all()
    assert work[0] == 8 << 32 and work[1] == 0


@pytest.mark.aarch64
def test_claim_band_takes_each_band_once_then_nothing():
    work = np.array([5 << 32, 0], np.int64)
    claim = resample._claim_band
    assert [claim(work, 5, 3) for _ in range(5)] == [0, 1, 2, -1, -1]
    assert claim(work, 4, 3) == -1  # another ticket


def _run_kernel_on(helpers: BandHelpers, pre: Preprocessor, image: np.ndarray, threads: int = 2):
    flat, launch = _launch(pre, image)
    out = np.full((1, 3, 224, 224), np.nan, np.float32)
    helpers.run(launch.kernel, _kernel_args(launch, flat, out), launch.scratch, threads, launch.work,
                band_count(224))
    return out


def test_a_caller_that_cannot_own_the_helpers_runs_alone():
    image = _photo()
    expected = Preprocessor(threads=1)(image)
    helpers = BandHelpers(max_helpers=1)
    try:
        with helpers._owner:  # another caller owns them
            out = _run_kernel_on(helpers, Preprocessor(threads=2), image)
        np.testing.assert_array_equal(out, expected)
        assert helpers._threads == []  # never started: the call did not use them
    finally:
        helpers.stop()


def test_helpers_join_calls_and_sleeping_helpers_are_woken():
    """A helper that ran out of polls blocks; a call wakes it (after its own work) and later calls
    get its help. Waits are bounded by counts of calls, never asserted as durations."""
    image = _photo(1500, 2000, seed=2)
    pre = Preprocessor(size=1000, crop_pct=1.0, threads=2)
    helpers = BandHelpers(PollPolicy(fast_polls=20, slow_period_us=1000, slow_polls=20), max_helpers=1)
    expected = Preprocessor(size=1000, crop_pct=1.0, threads=1)(image)
    flat, launch = _launch(pre, image)
    out = np.empty_like(expected)

    def call():
        helpers.run(launch.kernel, _kernel_args(launch, flat, out), launch.scratch, 2, launch.work,
                    band_count(1000))
        np.testing.assert_array_equal(out, expected)

    try:
        call()  # starts the helper
        for _ in range(500):  # until it has run out of polls (about 20 ms) and blocked
            if helpers._blocked:
                break
            threading.Event().wait(0.01)
        assert helpers._blocked == 1, "the helper never blocked"
        joined = sum(helpers.joined)
        call()  # runs alone, then wakes the helper
        for _ in range(200):  # back to back: the awake helper takes bands of some of them
            call()
            if sum(helpers.joined) > joined:
                break
        assert sum(helpers.joined) > joined, "the woken helper joined none of 200 calls"
    finally:
        helpers.stop()
    assert not any(t.is_alive() for t in helpers._threads)


def test_concurrent_callers_share_the_helpers_safely():
    images = [_photo(300 + 20 * i, 400 + 10 * i, seed=i) for i in range(6)]
    one = Preprocessor(threads=1)
    expected = [one(im) for im in images]
    pre = Preprocessor(threads=2)
    results: dict[int, list] = {}
    start = threading.Barrier(4)

    def work(k):
        start.wait()
        results[k] = [[pre(im) for im in images] for _ in range(5)]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(4):
        for rounds in results[k]:
            for got, want in zip(rounds, expected):
                np.testing.assert_array_equal(got, want)


def _run_script(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=600)


def test_a_forked_child_starts_its_own_helpers_and_processes_exit_cleanly():
    done = _run_script("""
        import os, sys
        import numpy as np
        from fixres_edge import Preprocessor
        from fixres_edge import workers
        image = np.random.default_rng(0).integers(0, 256, (375, 500, 3), dtype=np.uint8)
        expected = Preprocessor(threads=1)(image)
        pre = Preprocessor(threads=2)
        for _ in range(5):
            assert np.array_equal(pre(image), expected)
        parent_helpers = workers.band_helpers()
        pid = os.fork()
        if pid == 0:
            ok = workers.band_helpers() is not parent_helpers
            ok = ok and all(np.array_equal(pre(image), expected) for _ in range(5))
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
    """)
    assert done.returncode == 0, done.stderr[-2000:]
