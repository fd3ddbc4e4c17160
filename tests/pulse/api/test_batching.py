"""The micro-batcher on its own: coalescing, caps, result matching, errors, back-pressure."""

from __future__ import annotations

import asyncio
import threading

import pytest

from pulse.api.batching import MicroBatcher, Overloaded, estimate_tokens


def run(coro):
    return asyncio.run(coro)


def test_concurrent_texts_share_calls_within_the_caps_and_get_their_own_results() -> None:
    calls: list[list[str]] = []

    def work(texts: list[str]) -> list[str]:
        assert threading.current_thread().name.startswith("pulse-engine")  # never on the event loop
        calls.append(list(texts))
        return [t.upper() for t in texts]

    async def main() -> list[str]:
        batcher = MicroBatcher(work, max_wait_s=0.05, max_texts=8, max_tokens=40, max_length=512)
        await batcher.start()
        try:
            texts = [f"text {i}" + "x" * (i % 3) * 8 for i in range(30)]
            return texts, await asyncio.gather(*(batcher.submit(t) for t in texts)), batcher.stats
        finally:
            await batcher.stop()

    texts, results, stats = run(main())
    assert results == [t.upper() for t in texts]  # each caller gets its own row
    assert sorted(t for c in calls for t in c) == sorted(texts)
    assert all(len(c) <= 8 and sum(estimate_tokens(t, 512) for t in c) <= 40 for c in calls)
    assert (
        len(calls) < 30 and stats.batches == len(calls) and stats.texts == 30 and stats.largest == max(map(len, calls))
    )


def test_a_lone_text_waits_at_most_the_window() -> None:
    async def main() -> float:
        batcher = MicroBatcher(lambda texts: texts, max_wait_s=0.02)
        await batcher.start()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await batcher.submit("alone")
        elapsed = loop.time() - t0
        await batcher.stop()
        return elapsed

    assert 0.015 <= run(main()) < 1.0


def test_an_engine_error_reaches_every_waiting_caller_and_the_next_call_works() -> None:
    def work(texts: list[str]) -> list[str]:
        if "boom" in texts:
            raise RuntimeError("engine failed")
        return texts

    async def main() -> tuple[list, str]:
        batcher = MicroBatcher(work, max_wait_s=0.05)
        await batcher.start()
        outcomes = await asyncio.gather(batcher.submit("a"), batcher.submit("boom"), return_exceptions=True)
        after = await batcher.submit("fine")
        await batcher.stop()
        return outcomes, after

    outcomes, after = run(main())
    assert all(isinstance(o, RuntimeError) for o in outcomes) and after == "fine"


def test_a_full_queue_refuses_at_once() -> None:
    release = threading.Event()

    def work(texts: list[str]) -> list[str]:
        release.wait(5)
        return texts

    async def main() -> None:
        batcher = MicroBatcher(work, max_wait_s=0.0, max_texts=1, max_queue=2)
        await batcher.start()
        first = asyncio.ensure_future(batcher.submit("busy"))
        await asyncio.sleep(0.05)  # the worker holds "busy"
        waiting = [asyncio.ensure_future(batcher.submit(t)) for t in ("q1", "q2")]
        await asyncio.sleep(0)
        with pytest.raises(Overloaded):
            await batcher.submit("one too many")
        release.set()
        assert await first == "busy" and await asyncio.gather(*waiting) == ["q1", "q2"]
        await batcher.stop()

    run(main())


def test_token_estimate() -> None:
    assert estimate_tokens("", 512) == 2
    assert estimate_tokens("abcd" * 10, 512) == 12
    assert estimate_tokens("é" * 10, 512) == 7  # 20 UTF-8 bytes
    assert estimate_tokens("x" * 100_000, 128) == 128
