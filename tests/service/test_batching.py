"""The batcher: concurrent submissions share calls, the queue is bounded, one failure stays one."""

from __future__ import annotations

import asyncio
import threading

import pytest

from vgloc.service.batching import Batcher, QueueFullError


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, timeout=10))


def test_concurrent_submissions_are_batched_and_answered_in_order() -> None:
    calls: list[list[int]] = []

    def square(xs: list[int]) -> list[int]:
        calls.append(list(xs))
        return [x * x for x in xs]

    async def main() -> list[int]:
        batcher: Batcher[int, int] = Batcher(square, max_batch=4, max_wait_ms=200, capacity=100)
        await batcher.start()
        try:
            results = await asyncio.gather(*(batcher.submit(x) for x in range(10)))
        finally:
            await batcher.stop()
        assert batcher.stats.items == 10 and batcher.stats.batches == len(calls)
        assert [r.batch_size for r in results] == [len(c) for c in calls for _ in c]
        return [r.value for r in results]

    assert _run(main()) == [x * x for x in range(10)]
    # All ten were waiting together: full batches of 4, 4, then the 2 left.
    assert [len(c) for c in calls] == [4, 4, 2]
    assert sorted(x for c in calls for x in c) == list(range(10))


def test_a_full_queue_refuses_at_once_and_recovers() -> None:
    gate = threading.Event()

    def held(xs: list[int]) -> list[int]:
        gate.wait(5)
        return xs

    async def main() -> None:
        batcher: Batcher[int, int] = Batcher(held, max_batch=1, max_wait_ms=0, capacity=2)
        await batcher.start()
        try:
            first = asyncio.ensure_future(batcher.submit(1))
            second = asyncio.ensure_future(batcher.submit(2))
            await asyncio.sleep(0.05)
            assert batcher.pending == 2
            with pytest.raises(QueueFullError, match="capacity 2"):
                await batcher.submit(3)
            assert batcher.stats.rejected == 1
            gate.set()
            assert [(await first).value, (await second).value] == [1, 2]
            assert batcher.pending == 0
            assert (await batcher.submit(4)).value == 4  # room again
        finally:
            gate.set()
            await batcher.stop()

    _run(main())


def test_a_failing_item_fails_alone() -> None:
    def checked(xs: list[int]) -> list[int]:
        if any(x < 0 for x in xs):
            raise ValueError(f"negative input in {xs}")
        return [x + 1 for x in xs]

    async def main() -> None:
        batcher: Batcher[int, int] = Batcher(checked, max_batch=8, max_wait_ms=100, capacity=10)
        await batcher.start()
        try:
            results = await asyncio.gather(*(batcher.submit(x) for x in (1, -1, 2)), return_exceptions=True)
        finally:
            await batcher.stop()
        assert [getattr(r, "value", None) for r in results] == [2, None, 3]
        assert isinstance(results[1], ValueError) and "[-1]" in str(results[1])

    _run(main())


def test_bad_settings_and_unstarted_use_are_refused() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        Batcher(lambda xs: xs, max_batch=0)

    async def unstarted() -> None:
        await Batcher(lambda xs: xs).submit(1)

    with pytest.raises(RuntimeError, match="not started"):
        _run(unstarted())
