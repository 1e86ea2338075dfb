"""Micro-batching: requests that arrive together share one call on the model.

Each request puts its photo on a bounded queue and awaits a future. One worker task
takes the first waiting item, gathers more for at most ``max_wait_ms`` (or until
``max_batch`` are collected), and runs a single blocking call (``Localizer.locate``)
in a worker thread for the whole batch, so the event loop keeps accepting requests
meanwhile. A full queue refuses new work at once (:class:`QueueFullError`, answered 503)
instead of letting latency and memory grow without bound.

If a batch call fails, its items are retried one by one, so one undecodable photo
fails its own request only.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["BatchResult", "BatchStats", "Batcher", "QueueFullError"]

In = TypeVar("In")
Out = TypeVar("Out")


class QueueFullError(RuntimeError):
    """The batching queue holds ``capacity`` requests already; try again later."""


@dataclass
class BatchStats:
    """Counters since start: ``batches`` run, ``items`` processed, the largest batch seen
    and how many requests were refused because the queue was full."""

    batches: int = 0
    items: int = 0
    max_batch_seen: int = 0
    rejected: int = 0
    sizes: dict[int, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready counters (``sizes``: batch size -> number of batches of that size)."""
        return {
            "batches": self.batches,
            "items": self.items,
            "max_batch_seen": self.max_batch_seen,
            "mean_batch": self.items / self.batches if self.batches else 0.0,
            "rejected": self.rejected,
            "sizes": {str(k): v for k, v in sorted(self.sizes.items())},
        }


@dataclass(frozen=True)
class BatchResult(Generic[Out]):
    """One item's result and how it was served: ``queue_ms`` waiting, ``run_ms`` for the
    model call it shared with ``batch_size - 1`` others."""

    value: Out
    queue_ms: float
    run_ms: float
    batch_size: int


@dataclass
class _Item(Generic[In, Out]):
    value: In
    future: asyncio.Future[BatchResult[Out]]
    enqueued: float


class Batcher(Generic[In, Out]):
    """Runs ``fn(list_of_inputs) -> list_of_outputs`` on batches of concurrent submissions.

    Args:
        fn: a blocking function mapping N inputs to N outputs, in order (run in one
            worker thread, so calls never overlap).
        max_batch: the most inputs per call.
        max_wait_ms: how long the first item of a batch waits for company.
        capacity: the most items waiting or running; :meth:`submit` raises
            :class:`QueueFullError` beyond it.

    Use inside a running event loop: ``await batcher.start()``, ``await
    batcher.submit(x)``, ``await batcher.stop()``.
    """

    def __init__(
        self,
        fn: Callable[[list[In]], Sequence[Out]],
        *,
        max_batch: int = 8,
        max_wait_ms: float = 5.0,
        capacity: int = 64,
    ) -> None:
        if max_batch < 1 or capacity < 1 or max_wait_ms < 0:
            raise ValueError(
                f"need max_batch >= 1, capacity >= 1, max_wait_ms >= 0; got {max_batch}, {capacity}, {max_wait_ms}"
            )
        self.fn = fn
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.capacity = capacity
        self.stats = BatchStats()
        self._pending = 0  # waiting + running: what the capacity bounds
        self._queue: asyncio.Queue[_Item[In, Out]] | None = None
        self._task: asyncio.Task[None] | None = None
        # One thread: the model is one resource, and the Localizer serialises anyway.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vgloc-batch")

    @property
    def pending(self) -> int:
        """Requests waiting or being processed now."""
        return self._pending

    async def start(self) -> None:
        """Start the worker task on the running loop."""
        if self._task is not None:
            return
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="vgloc-batcher")

    async def stop(self) -> None:
        """Stop the worker; requests still queued fail with :class:`QueueFullError`."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._queue is not None:
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if not item.future.done():
                    item.future.set_exception(QueueFullError("the service is shutting down"))
        self._executor.shutdown(wait=True)

    async def submit(self, value: In) -> BatchResult[Out]:
        """Queue ``value`` and wait for its result.

        Raises:
            QueueFullError: ``capacity`` requests are pending already (nothing was queued).
            Exception: whatever ``fn`` raised for this item alone.
        """
        if self._queue is None:
            raise RuntimeError("the batcher is not started (await start() in the running loop)")
        if self._pending >= self.capacity:
            self.stats.rejected += 1
            raise QueueFullError(
                f"{self._pending} requests are queued (capacity {self.capacity}); retry shortly"
            )
        loop = asyncio.get_running_loop()
        item: _Item[In, Out] = _Item(value, loop.create_future(), time.perf_counter())
        self._pending += 1
        try:
            self._queue.put_nowait(item)
            return await item.future
        finally:
            self._pending -= 1

    async def _collect(self) -> list[_Item[In, Out]]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        deadline = time.perf_counter() + self.max_wait_s
        while len(batch) < self.max_batch:
            # Take what is already waiting without a timer; wait only for the rest.
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), left))
            except asyncio.TimeoutError:
                break
        # A caller that gave up (disconnected, cancelled) needs no work done.
        return [item for item in batch if not item.future.done()]

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            if not batch:
                continue
            started = time.perf_counter()
            try:
                outputs = await loop.run_in_executor(self._executor, self._call, [i.value for i in batch])
                results: list[tuple[Any, bool]] = [(o, True) for o in outputs]
            except Exception as exc:
                if len(batch) == 1:
                    results = [(exc, False)]
                else:
                    # Find the culprit(s): each item alone, so the others still succeed.
                    results = []
                    for item in batch:
                        results.append(await loop.run_in_executor(self._executor, self._single, item.value))
            run_ms = (time.perf_counter() - started) * 1000.0
            self._record(len(batch))
            for item, (value, ok) in zip(batch, results, strict=True):
                if item.future.done():
                    continue
                if ok:
                    queue_ms = (started - item.enqueued) * 1000.0
                    item.future.set_result(BatchResult(value, queue_ms, run_ms, len(batch)))
                else:
                    item.future.set_exception(value)

    def _call(self, values: list[In]) -> list[Out]:
        outputs = list(self.fn(values))
        if len(outputs) != len(values):
            raise RuntimeError(f"batch function returned {len(outputs)} results for {len(values)} inputs")
        return outputs

    def _single(self, value: In) -> tuple[Any, bool]:
        try:
            return self._call([value])[0], True
        except Exception as exc:
            return exc, False

    def _record(self, size: int) -> None:
        self.stats.batches += 1
        self.stats.items += size
        self.stats.max_batch_seen = max(self.stats.max_batch_seen, size)
        self.stats.sizes[size] = self.stats.sizes.get(size, 0) + 1
