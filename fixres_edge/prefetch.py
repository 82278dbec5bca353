"""Work on the next item while the caller handles the current one: one worker thread, one item ahead.

Used to decode the next photo while ONNX Runtime classifies the current one (``evaluate``,
``calibrate``'s collection): OpenCV's decoder and ONNX Runtime both release the GIL, so on a
multi-core board decoding leaves the critical path. At most two items' results are alive at once.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

_END = object()


class _Later:
    """``work(item)`` run by ``result()`` on the caller's thread: the sequential twin of a future."""

    def __init__(self, work: Callable, item):
        self._work = work
        self._item = item

    def result(self):
        return self._work(self._item)


def ahead(items: Iterable[Item], work: Callable[[Item], Result], background: bool = True
          ) -> Iterator[tuple[Item, "Future[Result]"]]:
    """Yield ``(item, future)`` in order, where ``future`` holds ``work(item)``, started on a worker
    thread before the previous item was yielded.

    ``future.result()`` returns ``work(item)`` or raises what it raised, in the caller's thread, so
    per-item error handling stays where it was. The worker thread ends with the iteration.
    ``background=False`` runs each ``work(item)`` in ``result()`` instead (the same loop, sequential).

    Examples
    --------
    >>> [(item, future.result()) for item, future in ahead([1, 2, 3], lambda x: x * 10)]
    [(1, 10), (2, 20), (3, 30)]
    """
    if not background:
        yield from ((item, _Later(work, item)) for item in items)
        return
    iterator = iter(items)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fixres_edge-ahead") as pool:
        current = next(iterator, _END)
        future = None if current is _END else pool.submit(work, current)
        while current is not _END:
            following = next(iterator, _END)
            following_future = None if following is _END else pool.submit(work, following)
            yield current, future
            current, future = following, following_future
