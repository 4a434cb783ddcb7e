"""Batch assembly one step ahead, on a worker thread, while the model computes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def ahead(
    fn: Callable[[T], Any],
    items: Iterable[T],
    enabled: bool = True,
    setup: Callable[[], None] | None = None,
) -> Iterator[tuple[T, Any]]:
    """``(item, fn(item))`` for each item, in order; ``fn`` of the next item runs on a worker
    thread while the caller works on the current one (``enabled=False``: inline, in turn).

    ``fn`` is called on the items one at a time and in order either way, so where it is the
    only code drawing from torch's global random generator (the augmentations, not the model
    step), the draws, and so the results, are the same with and without the worker. Torch
    releases the interpreter lock inside its kernels, so the two threads compute at once. An
    exception in ``fn`` is raised to the caller when it asks for that item. ``setup`` runs
    first on the worker thread (e.g. to make the process's GPU the thread's current device).

    Example:
        >>> [r for _, r in ahead(lambda i: i * i, range(4))]
        [0, 1, 4, 9]
    """
    if not enabled:
        for item in items:
            yield item, fn(item)
        return
    with ThreadPoolExecutor(1, thread_name_prefix="medcl-prefetch", initializer=setup) as pool:
        pending = None  # the item before this one, and its result to come
        for item in items:
            future = pool.submit(fn, item)  # queued behind the pending one: in order
            if pending is not None:
                yield pending[0], pending[1].result()
            pending = (item, future)
        if pending is not None:
            yield pending[0], pending[1].result()
