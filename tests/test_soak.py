"""Long runs: memory stays flat and every cache is bounded.

20000 preprocess calls and 2000 classifications over varied sizes and formats; after a warm-up
pass (which fills the caches and grows the reused buffers to their final size) the resident set
may grow by at most 5 MB. Run with ``-s`` to see the RSS figures.

The soak runs are marked ``slow``: skipped by default, run with ``pytest --run-slow`` (or ``-m slow``).
The cache-bound tests at the end run by default.
"""
from __future__ import annotations

import gc
import os
import sys

import numpy as np
import pytest

from fixres_edge import preprocess, tables
from fixres_edge.preprocess import Preprocessor

RSS_GROWTH_LIMIT = 5 * 1024 * 1024
PREPROCESS_CALLS = 20_000
CLASSIFICATIONS = 2_000


def rss_bytes() -> int:
    """Current resident set size (Linux ``/proc/self/statm``; elsewhere the peak from ``resource``)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def settled_rss() -> int:
    gc.collect()
    return rss_bytes()


def report(what: str, before: int, after: int, calls: int) -> None:
    print(f"\n[soak] {what}: {calls} calls after warm-up, RSS {before / 2**20:.1f} MB -> {after / 2**20:.1f} MB "
          f"({(after - before) / 2**20:+.2f} MB)")


def varied_inputs(count: int, seed: int) -> list[tuple[str, np.ndarray]]:
    """``count`` frames: six formats, distinct sizes (more than the plan cache holds), some strided views."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(count):
        h = int(rng.integers(24, 240)) & ~1
        w = int(rng.integers(24, 320)) & ~1
        fmt = ("BGR", "RGB", "BGRA", "GRAY", "NV12", "I420", "YUYV")[i % 7]
        shape = {"BGR": (h, w, 3), "RGB": (h, w, 3), "BGRA": (h, w, 4), "GRAY": (h, w),
                 "NV12": (h * 3 // 2, w), "I420": (h * 3 // 2, w), "YUYV": (h, w, 2)}[fmt]
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        if fmt == "BGR" and i % 2:
            image = image[::-1, ::-1]  # negative strides take the non-contiguous path
        items.append((fmt, image))
    return items


# ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_preprocess_soak_rss_flat():
    items = varied_inputs(60, seed=11)  # fits the plan cache: steady state has no planning
    # Every 10th call: a size never seen in a while (views of one big frame), so plans and tables
    # are evicted and rebuilt all along.
    big = np.random.default_rng(12).integers(0, 256, (400, 400, 3), dtype=np.uint8)
    churn = [(h, w) for h in range(30, 400, 13) for w in range(40, 400, 37)]
    pres = [Preprocessor(size=64, threads=1),
            Preprocessor(size=(48, 64), threads=1, dtype="uint8", layout="NHWC"),
            Preprocessor(size=56, threads=1, dtype="float16", interpolation="area")]
    # The parallel kernels run less often: interleaved with other work, each launch has to wake the
    # worker threads, which on a busy machine takes milliseconds.
    parallel = Preprocessor(size=64, threads=None)
    outs = [np.empty(p.out_shape(1), p.config.dtype) for p in pres]

    def one_call(n: int) -> None:
        k = n % len(pres)
        if n % 10 == 9:
            h, w = churn[(n // 10) % len(churn)]
            pres[k](big[:h, :w], out=outs[k])
        elif n % 100 == 50:
            fmt, image = items[(n // 100) % len(items)]
            parallel(image, input_format=fmt)
        else:
            fmt, image = items[(n // len(pres)) % len(items)]
            if n % 2:
                pres[k](image, out=outs[k], input_format=fmt)
            else:
                pres[k](image, input_format=fmt)

    # Warm-up: every (preprocessor, input) pair and a full churn cycle; caches and reused
    # buffers reach their final size.
    for pre, out in zip(pres, outs):
        for fmt, image in items:
            pre(image, out=out, input_format=fmt)
            pre(image, input_format=fmt)
    for fmt, image in items:
        parallel(image, input_format=fmt)
    for n in range(10 * len(churn)):
        one_call(n)
    before = settled_rss()
    for n in range(PREPROCESS_CALLS):
        one_call(n)
    after = settled_rss()
    report("preprocess", before, after, PREPROCESS_CALLS)
    assert after - before <= RSS_GROWTH_LIMIT, f"RSS grew by {(after - before) / 2**20:.2f} MB"
    for pre in pres:
        assert len(pre._plans) <= preprocess.PLAN_CACHE_SIZE
    assert tables.axis_table.cache_info().currsize <= tables.TABLE_CACHE_SIZE


@pytest.mark.slow
def test_classification_soak_rss_flat(tmp_path):
    pytest.importorskip("onnx")
    from tiny_images import jpeg_bytes
    from tiny_models import classes_model

    from fixres_edge.policy import ScalePolicy
    from fixres_edge.runtime import Classifier

    model = classes_model(tmp_path / "tiny.onnx", card={"name": "tiny", "train_size": 32, "size_stride": 8})
    policy = ScalePolicy(model="tiny", scales=[(24, 0.875), (32, 0.875), (48, 1.0)], mode="cascade", threshold=0.5)
    clf = Classifier(model, policy=policy, threads=1)
    rng = np.random.default_rng(12)
    items: list = [jpeg_bytes(int(rng.integers(30, 400)), int(rng.integers(30, 400)), seed=i) for i in range(20)]
    items += [rng.integers(0, 256, (int(rng.integers(20, 300)), int(rng.integers(20, 300)), 3), dtype=np.uint8)
              for _ in range(20)]
    items.append(b"broken data")  # failures must not leak either
    for item in items:  # warm-up
        clf.predict_batch([item])
    before = settled_rss()
    done = 0
    while done < CLASSIFICATIONS:
        results = clf.predict_batch(items, topk=3)
        assert [r.ok for r in results] == [True] * (len(items) - 1) + [False]
        done += len(items)
    after = settled_rss()
    report("classify (tiny model, cascade, decode)", before, after, done)
    assert after - before <= RSS_GROWTH_LIMIT, f"RSS grew by {(after - before) / 2**20:.2f} MB"


@pytest.mark.slow
def test_bundled_model_soak_rss_flat(bundled_model):
    from fixres_edge.runtime import Classifier

    from tiny_images import jpeg_bytes

    clf = Classifier(size=160, threads=1)
    rng = np.random.default_rng(13)
    items: list = [jpeg_bytes(int(rng.integers(120, 700)), int(rng.integers(120, 700)), seed=i) for i in range(10)]
    items += [rng.integers(0, 256, (int(rng.integers(100, 500)), int(rng.integers(100, 500)), 3), dtype=np.uint8)
              for _ in range(10)]
    for item in items:
        clf.predict(item)
    before = settled_rss()
    done = 0
    while done < CLASSIFICATIONS:
        for item in items:
            clf.predict(item)
        done += len(items)
    after = settled_rss()
    report("classify (bundled EfficientNet-Lite0 at 160)", before, after, done)
    assert after - before <= RSS_GROWTH_LIMIT, f"RSS grew by {(after - before) / 2**20:.2f} MB"


# ------------------------------------------------------------------------------------------------
# Cache bounds
@pytest.mark.aarch64
@pytest.mark.parametrize("cache", ["plans", "launches"])
def test_per_shape_caches_are_bounded_lru(cache):
    """The plan cache (geometry and tables) and the prepared-launch cache keep the most recent
    ``PLAN_CACHE_SIZE`` input shapes; a hit refreshes an entry."""
    pre = Preprocessor(size=4, threads=1)

    def cached_sizes():
        if cache == "plans":
            return {key[:2] for key in pre._plans}
        return {key[1][:2] for key in pre._launches()}  # (format, shape, dtype, threads)

    limit = preprocess.PLAN_CACHE_SIZE
    sizes = [(8 + i, 9) for i in range(limit + 20)]
    for h, w in sizes:
        pre(np.zeros((h, w, 3), np.uint8))
    # The most recent sizes are the ones kept; the oldest were evicted.
    assert cached_sizes() == set(sizes[-limit:])
    assert len(pre._plans if cache == "plans" else pre._launches()) == limit
    # A hit refreshes an entry: it survives the next eviction, and the next oldest goes.
    if cache == "plans":
        pre.plan(*sizes[-limit])
    else:
        pre(np.zeros(sizes[-limit] + (3,), np.uint8))
    pre(np.zeros((500, 9, 3), np.uint8))
    assert sizes[-limit] in cached_sizes()
    assert sizes[-limit + 1] not in cached_sizes()


@pytest.mark.aarch64
def test_table_cache_is_bounded():
    pre = Preprocessor(size=4, threads=1, interpolation="bicubic", antialias=False)
    limit = tables.TABLE_CACHE_SIZE
    assert tables.axis_table.cache_info().maxsize == limit
    for h in range(10, 10 + limit + 40):  # every height gives a new row table
        pre(np.zeros((h, 7), np.uint8), input_format="GRAY")
    info = tables.axis_table.cache_info()
    assert info.currsize == limit and info.maxsize == limit


def test_classifier_buffers_do_not_grow_per_call(tmp_path):
    pytest.importorskip("onnx")
    from tiny_models import classes_model

    from fixres_edge.runtime import Classifier

    clf = Classifier(classes_model(tmp_path / "m.onnx", card={"train_size": 32, "size_stride": 8}), threads=1)
    rng = np.random.default_rng(14)
    for _ in range(50):
        clf.predict(rng.integers(0, 256, (int(rng.integers(20, 90)), int(rng.integers(20, 90)), 3), dtype=np.uint8))
    assert len(clf._pre) == 1 and len(clf._local.buffers) == 1
    pre = clf.preprocessor(32)
    assert len(pre._plans) <= preprocess.PLAN_CACHE_SIZE
    workspace = pre._local.workspace
    shapes = {name: buf.shape for name, buf in workspace.items()}
    for _ in range(20):
        clf.predict(rng.integers(0, 256, (60, 70, 3), dtype=np.uint8))
    assert {name: buf.shape for name, buf in pre._local.workspace.items()} == shapes  # reused, not regrown
