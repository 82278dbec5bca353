"""One Preprocessor and one Classifier shared by 8 threads give exactly the serial results.

The kernels are called through ctypes, which releases the GIL, so Python threads run them in
parallel (tests/test_kernel_backends.py checks the GIL is released; the throughput gain is
measured by the bench, never asserted here: timing on a shared CI machine is noise). Per-thread scratch buffers, the locked plan cache and the per-thread ORT input buffers
are what these tests exercise.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from fixres_edge import preprocess
from fixres_edge.preprocess import Preprocessor

THREADS = 8


def run_in_threads(work, jobs, threads: int = THREADS):
    """Run ``work(job)`` for every job on ``threads`` threads that start together; results in job order."""
    barrier = threading.Barrier(threads)

    def start(_):
        barrier.wait()

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(start, range(threads)))  # every worker thread exists and is released at once
        return list(pool.map(work, jobs))


def frames(seed: int = 0, count: int = 24, big: int = 120) -> list[tuple[str, np.ndarray]]:
    """(input_format, array) pairs of assorted sizes and formats."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        h = int(rng.integers(12, big)) & ~1
        w = int(rng.integers(12, big)) & ~1
        fmt = ("BGR", "RGBA", "GRAY", "NV12", "I420", "YUYV")[i % 6]
        shape = {"BGR": (h, w, 3), "RGBA": (h, w, 4), "GRAY": (h, w), "NV12": (h * 3 // 2, w),
                 "I420": (h * 3 // 2, w), "YUYV": (h, w, 2)}[fmt]
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        if fmt == "BGR" and i % 4 == 0:
            image = image[::-1, 1:]  # a strided view
        out.append((fmt, image))
    return out


# ------------------------------------------------------------------------------------------------
# Preprocessor
@pytest.mark.parametrize("threads", [pytest.param(1, marks=pytest.mark.aarch64), 2],
                         ids=["batch-threads=1", "batch-threads=2"])
@pytest.mark.parametrize("dtype, layout", [("float32", "NCHW"), ("uint8", "NHWC")])
def test_shared_preprocessor_matches_serial(threads, dtype, layout):
    pre = Preprocessor(size=16, threads=threads, dtype=dtype, layout=layout)
    items = frames(seed=1, count=12, big=64)
    expected = [pre(image, input_format=fmt).copy() for fmt, image in items]
    # Every thread runs every item, each thread in its own order, several rounds.
    jobs = [(t, r) for t in range(THREADS) for r in range(2)]

    def work(job):
        t, r = job
        order = np.random.default_rng(100 * t + r).permutation(len(items))
        results = {}
        for i in order:
            fmt, image = items[i]
            results[i] = pre(image, input_format=fmt)
        return results

    for results in run_in_threads(work, jobs):
        for i, got in results.items():
            np.testing.assert_array_equal(got, expected[i])


@pytest.mark.parametrize("threads", [1, 2], ids=["batch-threads=1", "batch-threads=2"])
def test_shared_preprocessor_with_out_buffers_and_plan_eviction(threads, monkeypatch):
    # A small plan cache, so that threads evict each other's plans while they work.
    monkeypatch.setattr(preprocess, "PLAN_CACHE_SIZE", 4)
    pre = Preprocessor(size=24, threads=threads)
    items = frames(seed=2, count=30, big=160)
    expected = [pre(image, input_format=fmt).copy() for fmt, image in items]

    def work(t):
        out = np.empty(pre.out_shape(1), np.float32)
        mismatches = 0
        for i in np.random.default_rng(t).permutation(len(items)):
            fmt, image = items[i]
            result = pre(image, out=out, input_format=fmt)
            assert result is out
            mismatches += not np.array_equal(out, expected[i])
        return mismatches

    assert run_in_threads(work, range(THREADS)) == [0] * THREADS
    assert len(pre._plans) <= 4


def test_shared_batch_matches_serial():
    pre = Preprocessor(size=20, threads=1)
    images = [image for fmt, image in frames(seed=3, count=18) if fmt == "BGR"]
    expected = pre.batch(images).copy()
    for got in run_in_threads(lambda _: pre.batch(images), range(THREADS)):
        np.testing.assert_array_equal(got, expected)


# ------------------------------------------------------------------------------------------------
# Classifier
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("onnx")
    from tiny_models import classes_model

    return classes_model(tmp_path_factory.mktemp("conc") / "tiny.onnx", card={
        "name": "tiny", "train_size": 32, "crop_pct": 0.875, "size_stride": 8, "scales": [24, 32, 40]})


def photos(count: int = 16, seed: int = 4) -> list:
    """Arrays of assorted sizes plus encoded JPEGs (the decode path runs in threads too)."""
    from tiny_images import jpeg_bytes

    rng = np.random.default_rng(seed)
    items = []
    for i in range(count):
        h, w = int(rng.integers(40, 200)), int(rng.integers(40, 200))
        items.append(jpeg_bytes(h, w, seed=i) if i % 3 == 0 else rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    return items


def assert_same(prediction, expected):
    assert [t.index for t in prediction.top] == [t.index for t in expected.top]
    np.testing.assert_array_equal(prediction.probs, expected.probs)
    assert prediction.scales == expected.scales


@pytest.mark.parametrize("threads", [1, None], ids=["threads=1", "threads=None"])
@pytest.mark.parametrize("mode", [pytest.param("single", marks=pytest.mark.aarch64), "cascade"])
def test_shared_classifier_matches_serial(tiny, threads, mode):
    from fixres_edge.policy import ScalePolicy
    from fixres_edge.runtime import Classifier

    policy = None
    if mode == "cascade":
        policy = ScalePolicy(model="tiny", scales=[(24, 0.875), (32, 0.875), (40, 0.875)], mode="cascade",
                             threshold=0.6)
    clf = Classifier(tiny, policy=policy, threads=threads)
    items = photos(count=10)
    expected = [clf.predict(item, topk=3) for item in items]
    if mode == "cascade":
        assert len({len(p.scales) for p in expected}) > 1  # some stop early, some escalate

    def work(t):
        order = np.random.default_rng(t).permutation(len(items))
        return {int(i): clf.predict(items[i], topk=3) for i in order}

    for results in run_in_threads(work, range(THREADS)):
        for i, prediction in results.items():
            assert_same(prediction, expected[i])


def test_shared_bundled_classifier_matches_serial(bundled_model):
    from fixres_edge.runtime import Classifier

    clf = Classifier(size=160, threads=1)
    items = photos(count=6, seed=9)
    expected = [clf.predict(item) for item in items]

    def work(t):
        i = t % len(items)
        return i, clf.predict(items[i])

    for i, prediction in run_in_threads(work, range(2 * THREADS)):
        assert_same(prediction, expected[i])


def test_predict_batch_from_threads(tiny):
    from fixres_edge.runtime import Classifier

    clf = Classifier(tiny, threads=1)
    items = photos(count=8, seed=5) + [b"not an image"]
    expected = clf.predict_batch(items, topk=2)
    for results in run_in_threads(lambda _: clf.predict_batch(items, topk=2), range(THREADS)):
        assert [r.ok for r in results] == [r.ok for r in expected] == [True] * 8 + [False]
        for got, want in zip(results[:-1], expected[:-1]):
            assert_same(got, want)
        assert results[-1].error == expected[-1].error
