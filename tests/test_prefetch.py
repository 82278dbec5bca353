"""fixres_edge.prefetch: the next item's work runs on a worker thread, in order, errors in their place."""
from __future__ import annotations

import threading

import pytest

from fixres_edge.prefetch import ahead


def test_results_in_order_and_errors_raised_for_their_item():
    def work(x):
        if x == 2:
            raise ValueError("bad item 2")
        return x * 10

    seen = []
    for item, future in ahead(range(5), work):
        try:
            seen.append((item, future.result()))
        except ValueError as error:
            seen.append((item, str(error)))
    assert seen == [(0, 0), (1, 10), (2, "bad item 2"), (3, 30), (4, 40)]


def test_the_next_item_runs_on_another_thread_while_the_caller_holds_the_current():
    """Item 1's work must start while the caller still handles item 0: it waits for the worker."""
    started = {0: threading.Event(), 1: threading.Event()}
    threads = {}

    def work(x):
        threads[x] = threading.get_ident()
        started[x].set()
        return x

    iterator = ahead([0, 1], work)
    item, future = next(iterator)
    assert future.result() == 0
    assert started[1].wait(timeout=30), "the next item's work did not start while the caller held item 0"
    assert threads[1] != threading.get_ident()
    assert [i for i, _ in iterator] == [1]


def test_sequential_mode_runs_work_on_the_callers_thread_when_asked():
    threads = []
    results = [f.result() for _, f in ahead([1, 2], lambda x: threads.append(threading.get_ident()) or x,
                                            background=False)]
    assert results == [1, 2] and set(threads) == {threading.get_ident()}


def test_empty_input():
    assert list(ahead([], lambda x: pytest.fail("no work expected"))) == []
