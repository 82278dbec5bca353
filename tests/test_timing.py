"""The shared timing harness: interleaving orders, warm-up dropped, the collector restored, paired
ratios, summaries. Durations come from a fake clock; nothing asserts on real time."""
from __future__ import annotations

import gc
import itertools
import types

import numpy as np
import pytest

import fixres_edge.timing as timing
from fixres_edge.timing import Stats, interleaved, paired_ratio, stopwatch


@pytest.fixture
def fake_clock(monkeypatch):
    """A nanosecond clock that only the timed calls advance (``clock.spend(ns)``)."""
    clock = types.SimpleNamespace(now=0)

    def spend(ns: int) -> None:
        clock.now += ns

    clock.spend = spend
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter_ns=lambda: clock.now,
                                                              perf_counter=lambda: clock.now / 1e9))
    return clock


@pytest.mark.aarch64
def test_rotation_drops_warmup_and_keeps_rounds_aligned(fake_clock):
    order = []
    cost = {"a": 1, "b": 10, "c": 100}

    def call(name):
        order.append(name)
        fake_clock.spend(cost[name] * (1 + (len(order) - 1) // 3))  # every round slower than the last

    times = interleaved({name: (lambda name=name: call(name)) for name in "abc"}, repeat=4, warmup=2)
    rounds = [order[i:i + 3] for i in range(0, len(order), 3)]
    assert len(rounds) == 6 and all(sorted(r) == ["a", "b", "c"] for r in rounds)
    starts = ["abc".index(r[0]) for r in rounds]
    assert all((b - a) % 3 == 1 for a, b in itertools.pairwise(starts))  # each round starts one later
    assert all(v.shape == (4,) and v.dtype == np.int64 for v in times.values())
    # Index r of every array is the same round: the ratios within a round are exact.
    np.testing.assert_array_equal(times["b"], 10 * times["a"])
    assert times["a"].tolist() == [3, 4, 5, 6]  # the two warm-up rounds (the cheapest) are not kept


@pytest.mark.aarch64
def test_seeded_shuffle(fake_clock):
    def orders(seed):
        order = []
        interleaved({name: (lambda name=name: order.append(name)) for name in "abcd"}, repeat=12, warmup=0,
                    seed=seed)
        return [tuple(order[i:i + 4]) for i in range(0, len(order), 4)]

    first = orders(3)
    assert first == orders(3) and first != orders(4)
    assert all(sorted(r) == list("abcd") for r in first)
    # Not a rotation: some method follows different neighbours in different rounds.
    followers = {r[i]: set() for r in first for i in range(4)}
    for r in first:
        for x, y in itertools.pairwise(r):
            followers[x].add(y)
    assert any(len(v) > 1 for v in followers.values())


@pytest.mark.aarch64
def test_collector_restored_even_when_a_call_fails(fake_clock):
    assert gc.isenabled()

    def boom():
        assert not gc.isenabled()  # paused while timing
        raise LookupError("boom")

    with pytest.raises(LookupError):
        interleaved({"boom": boom}, repeat=1)
    assert gc.isenabled()


@pytest.mark.aarch64
@pytest.mark.parametrize("repeat, warmup, message", [
    (0, 1, "repeat must be a positive int, got 0"), (True, 0, "repeat must be a positive int, got True"),
    (1.5, 0, "repeat must be a positive int"), (2, -1, "warmup must be a non-negative int, got -1"),
])
def test_bad_counts(repeat, warmup, message):
    with pytest.raises(ValueError, match=message):
        interleaved({"a": lambda: None}, repeat=repeat, warmup=warmup)


@pytest.mark.aarch64
def test_paired_ratio_ignores_load_that_hits_whole_rounds():
    load = np.array([1.0, 5.0, 1.0, 9.0, 2.0])
    assert paired_ratio(3.0 * load, load) == pytest.approx(3.0)
    assert paired_ratio([2.0, 2.0, 30.0], [1.0, 1.0, 10.0]) == 2.0  # the median of per-round ratios
    with pytest.raises(ValueError, match="two 1-D arrays"):
        paired_ratio([1.0, 2.0], [1.0])


@pytest.mark.aarch64
def test_stats_and_stopwatch(fake_clock):
    s = Stats.from_ns(np.arange(1, 101) * 1_000_000)  # 1..100 ms
    assert s.n == 100 and s.p50_ms == pytest.approx(50.5) and s.min_ms == 1.0
    assert s.throughput_per_s == pytest.approx(1000 / 50.5)
    with pytest.raises(ValueError, match="no samples"):
        Stats.from_ns([])
    seconds = {}
    with stopwatch(seconds, "step"):
        fake_clock.spend(2_000_000_000)
    with pytest.raises(KeyError):
        with stopwatch(seconds, "step"):
            fake_clock.spend(500_000_000)
            raise KeyError("x")
    assert seconds == {"step": pytest.approx(2.5)}


def test_harness_overhead_is_measured():
    assert timing.harness_overhead_ns(repeat=50) >= 0
