"""The Classifier's per-scale caches (Preprocessors, flipped Preprocessors for YUV frames into a
BGR model, per-thread input buffers) are bounded LRUs: a stream of odd ``predict(size=...)``
values does not grow them."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")

from tiny_models import classes_model  # noqa: E402

from fixres_edge import runtime  # noqa: E402
from fixres_edge.runtime import PREPROCESSOR_CACHE_SIZE, Classifier  # noqa: E402


@pytest.fixture(scope="module")
def bgr_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("cache") / "tiny.onnx"
    return classes_model(path, card={"train_size": 16, "size_stride": 8, "channel_order": "BGR"})


def cached_sizes(cache) -> list[int]:
    return [scale.size for scale in cache]


def test_preprocessor_cache_is_a_bounded_lru(bgr_model):
    clf = Classifier(bgr_model, threads=1)
    limit = PREPROCESSOR_CACHE_SIZE
    assert 2 <= limit <= 32
    sizes = [8 * k for k in range(1, limit + 6)]
    frame = np.random.default_rng(0).integers(0, 256, (96, 64), dtype=np.uint8)  # NV12 of 64x64
    for size in sizes:
        clf.predict(frame, size=size, input_format="NV12")
    for cache in (clf._pre, clf._pre_flipped, clf._local.buffers):
        assert cached_sizes(cache) == sizes[-limit:]  # the most recent, oldest first
    # A hit refreshes an entry: the oldest kept size survives the next new size.
    oldest = sizes[-limit]
    clf.predict(frame, size=oldest, input_format="NV12")
    clf.predict(frame, size=8 * (limit + 10), input_format="NV12")
    for cache in (clf._pre, clf._pre_flipped, clf._local.buffers):
        assert oldest in cached_sizes(cache) and sizes[-limit + 1] not in cached_sizes(cache)
        assert len(cache) == limit


def test_evicted_scale_is_rebuilt_with_the_same_result(bgr_model, monkeypatch):
    monkeypatch.setattr(runtime, "PREPROCESSOR_CACHE_SIZE", 2)
    clf = Classifier(bgr_model, threads=1)
    image = np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    first = clf.predict(image, size=16).probs
    for size in (24, 32, 40):
        clf.predict(image, size=size)
    assert cached_sizes(clf._pre) == [32, 40]
    np.testing.assert_array_equal(clf.predict(image, size=16).probs, first)
