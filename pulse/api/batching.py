"""Dynamic micro-batching: requests arriving together share one engine call.

One scoring request carries one text, but the engine is fastest on batches (Clipper, NSDI 2017;
NVIDIA Triton's dynamic batcher; TorchServe's ``max_batch_delay``). :class:`MicroBatcher` puts
each text on an asyncio queue; one collector task takes the first waiting text, then keeps taking
texts until

- ``max_wait_s`` has passed since that first text *arrived* (default 5 ms; texts that queued
  while the previous batch ran are taken at once, so under load batches fill without waiting), or
- the batch is full: ``max_texts`` texts, or one more text would make the call's estimated
  tokens exceed ``max_tokens`` (default :data:`CALL_BUDGETS` x the engine's token budget
  ``PULSE_SCORE_BATCH_BUDGET``; lengths are estimated as ``ceil(UTF-8 bytes / 4) + 2`` tokens,
  capped at the model's ``max_length``: BERT-family WordPiece averages about 4 bytes of English
  per token, +2 for [CLS]/[SEP]),

then runs ``work(texts)`` (the scorer's ``score``) in ONE worker thread, so the event loop stays
free to accept requests while the model runs and the model is never called concurrently. The cap
is on the call's total tokens, not on ``texts x longest`` in arrival order: the engine sorts a
call's texts by length and packs them into batches of its token budget itself
(:func:`moderation.scorers.token_budget_batches`), so a call of several budgets pads as little as
batch scoring does, while a cap of one padded budget in arrival order (a 500-token post next to
short comments) closed most calls at two texts and reached about half of batch throughput
(measured: BENCHMARKS.md, "Real-time API"). Each
waiting request gets its own row back (rows are matched by position, never by text). On the fp32
path a text's scores do not depend on its batch mates; on the ONNX int8 path they move slightly
(activations are quantized per batch; see :mod:`moderation.scorers`).

A full queue (``max_queue`` texts waiting) refuses new texts at once (:class:`Overloaded`) instead
of letting latency grow without bound.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

CALL_BUDGETS = 4
"""A coalesced call holds up to this many engine token budgets (bounds the latency one call adds)."""


class Overloaded(RuntimeError):
    """The batcher's queue is full; the caller should answer 503 and let the client retry."""


@dataclass
class BatchStats:
    """Counters of what the batcher did (for ``/healthz`` and the benchmark).

    Attributes:
        texts: texts scored. batches: engine calls. largest: most texts in one call.
        busy_s: wall seconds the worker spent in engine calls.
    """

    texts: int = 0
    batches: int = 0
    largest: int = 0
    busy_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        mean = self.texts / self.batches if self.batches else 0.0
        return {"texts": self.texts, "batches": self.batches, "largest_batch": self.largest,
                "mean_batch": round(mean, 2), "busy_s": round(self.busy_s, 3)}  # fmt: skip


@dataclass
class _Item:
    text: str
    tokens: int
    future: asyncio.Future[Any]
    arrived: float = field(default_factory=time.monotonic)


def estimate_tokens(text: str, max_length: int) -> int:
    """Estimated tokens of ``text`` after truncation: ``min(max_length, ceil(bytes / 4) + 2)``."""
    return min(max_length, math.ceil(len(text.encode("utf-8", "surrogatepass")) / 4) + 2)


class MicroBatcher:
    """Coalesce concurrent single-text requests into engine batches.

    Args:
        work: called in the worker thread with a list of texts; returns one result per text, in
            order (e.g. ``lambda texts: scorer.score(texts).to_dicts()``).
        max_wait_s: longest a text waits for batch mates after it arrives (seconds, >= 0).
        max_texts: texts per engine call at most (>= 1).
        max_tokens: estimated tokens per call at most, summed over its texts (None: no token cap,
            e.g. the lexical model).
        max_length: the model's tokens per text after truncation (for the estimate).
        max_queue: texts waiting at most before :meth:`submit` raises :class:`Overloaded`.

    Use inside a running event loop: ``await start()``, ``await submit(text)``, ``await stop()``.
    """

    def __init__(
        self,
        work: Callable[[list[str]], Sequence[Any]],
        *,
        max_wait_s: float = 0.005,
        max_texts: int = 64,
        max_tokens: int | None = None,
        max_length: int = 512,
        max_queue: int = 4096,
    ) -> None:
        if max_wait_s < 0 or max_texts < 1 or max_queue < 1 or (max_tokens is not None and max_tokens < 1):
            raise ValueError("max_wait_s >= 0, max_texts >= 1, max_queue >= 1 and max_tokens >= 1 (or None)")
        self.work = work
        self.max_wait_s = max_wait_s
        self.max_texts = max_texts
        self.max_tokens = max_tokens
        self.max_length = max_length
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=max_queue)
        self._carry: _Item | None = None
        self._task: asyncio.Task[None] | None = None
        # One worker thread: the engine is never entered twice at once (its own intra-op threads
        # use the cores). Also used by :meth:`run` for other engine work (explanations).
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="pulse-engine")

    async def start(self) -> None:
        """Start the collector task (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._collect(), name="pulse-micro-batcher")

    async def stop(self) -> None:
        """Stop collecting, fail what still waits, and shut the worker thread down."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(Overloaded("the server is shutting down"))
        self.executor.shutdown(wait=True)

    async def submit(self, text: str) -> Any:
        """Score one text with whatever else arrives within the wait; return its own result.

        Raises:
            Overloaded: the queue is full.
            Exception: whatever ``work`` raised for the batch holding this text.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Item(text, estimate_tokens(text, self.max_length), future))
        except asyncio.QueueFull:
            raise Overloaded(f"{self._queue.maxsize} texts are already waiting to be scored") from None
        return await future

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` on the engine's worker thread (serialised with the batches)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def _fits(self, batch: list[_Item], tokens: int, item: _Item) -> bool:
        if len(batch) >= self.max_texts:
            return False
        return self.max_tokens is None or tokens + item.tokens <= self.max_tokens

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = self._carry if self._carry is not None else await self._queue.get()
            self._carry = None
            batch, tokens = [first], first.tokens
            deadline = first.arrived + self.max_wait_s
            while True:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(self._queue.get(), remaining)
                    except TimeoutError:
                        break
                if not self._fits(batch, tokens, item):
                    self._carry = item  # starts the next batch
                    break
                batch.append(item)
                tokens += item.tokens
            live = [i for i in batch if not i.future.done()]  # a cancelled request is not scored
            if not live:
                continue
            t0 = time.perf_counter()
            try:
                results = await loop.run_in_executor(self.executor, self.work, [i.text for i in live])
                if len(results) != len(live):
                    raise RuntimeError(f"the engine returned {len(results)} results for {len(live)} texts")
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the error
                for i in live:
                    if not i.future.done():
                        i.future.set_exception(exc)
                continue
            finally:
                self.stats.busy_s += time.perf_counter() - t0
            self.stats.texts += len(live)
            self.stats.batches += 1
            self.stats.largest = max(self.stats.largest, len(live))
            for i, result in zip(live, results, strict=True):
                if not i.future.done():
                    i.future.set_result(result)
