"""Request load against a serving engine: fixed concurrency or Poisson arrivals, as vLLM's benchmark offers.

The client (a backend's `client()`: an async context manager with `identity()` and `request(prompt,
max_tokens) -> StreamedRequest`) does the HTTP; this module only shapes the load and keeps what came back.

- Fixed concurrency: `concurrency` requests in flight; a new one starts as soon as one ends. A request's task is
  created only when it is due and a slot is free: memory follows the concurrency, not the request count.
- Poisson: arrivals at `request_rate` per second, gaps drawn from an exponential distribution with a seeded
  generator, at most `concurrency` in flight (a request that would exceed it waits for a slot, as in vLLM's
  `--max-concurrency`); `request_rate` 0 means "as fast as the concurrency allows".
- Warm-up: `warmup` requests (default min(concurrency, 4)) are sent and discarded before the timed load, so
  connection set-up and the engine's first-request costs are not measured. Their prompts are the
  `warmup_prompts` when given (the `openai` backend's come from another seed stream than the timed ones, so a
  prefix cache holds no timed prompt); otherwise the first timed prompts.

A prompt is a string, a list of token ids, or an object with `payload` (what is sent) and `sent` (the prompt
tokens the client counted, kept per request as `prompt_tokens_sent`).

The result is a `Measurement` where one iteration is one successful request: `samples_ns` its end-to-end latency,
`token_marks_ns` the arrival of each content chunk from the request's start (so TTFT, TPOT and ITL come out of
`Record.generation()` with vLLM's definitions), `loop_wall_ns` the timed load's wall time (so items/s is the
request throughput). Failed requests are not samples; the `serving` section counts them and keeps each one's
reason, with the server's identity, the load settings, and per request the prompt and output tokens the server
reported. Requests the client sent again after a failure before any response byte are counted apart
(`requests_retried`, `retry_reasons`), and the engine's own per-request timings are kept where its stream carried
them (`engine_timings`). Nothing here busy-waits: the event loop sleeps between arrivals.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from typing import Any, Callable

from bench.core.calls import StreamedRequest
from bench.core.record import Measurement

__all__ = ["run_request_load", "LoadShape", "payload_of"]


def payload_of(prompt: Any) -> Any:
    """What is sent for a prompt: its `payload` where it has one, else the prompt itself."""
    return getattr(prompt, "payload", prompt)


class LoadShape:
    """How requests are offered: count, concurrency bound, Poisson rate (0: none), seed, warm-up requests."""

    def __init__(self, requests: int, concurrency: int, request_rate: float, seed: int, warmup: int | None = None):
        self.requests, self.concurrency, self.request_rate, self.seed = requests, concurrency, request_rate, seed
        self.warmup = min(concurrency, 4) if warmup is None else warmup

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "concurrency": self.concurrency,
            "request_rate": self.request_rate or None,
            "arrivals": "poisson" if self.request_rate else "closed loop",
            "seed": self.seed,
            "warmup_requests": self.warmup,
        }


async def _offer(client, prompts: list[str], max_tokens: int, shape: LoadShape) -> list[StreamedRequest]:
    """Send `shape.requests` requests. A request's task is created when it is due and a slot is free, so at most
    `concurrency` exist at once, whatever the request count; Poisson arrival times are drawn ahead on an absolute
    clock, so a request that waited for a slot does not delay the ones after it."""
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(shape.concurrency)
    rng = random.Random(shape.seed)
    results: list[StreamedRequest | None] = [None] * shape.requests
    running: set[asyncio.Task] = set()

    async def one(index: int) -> None:
        began = time.perf_counter_ns()
        try:
            results[index] = await client.request(payload_of(prompts[index % len(prompts)]), max_tokens)
        except Exception as exc:  # a client that raises fails this request, not the load
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
            results[index] = StreamedRequest(False, began, [], time.perf_counter_ns(), error=error)
        finally:
            slots.release()

    due = loop.time()
    for index in range(shape.requests):
        if shape.request_rate and index:
            due += rng.expovariate(shape.request_rate)
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
        await slots.acquire()
        task = asyncio.create_task(one(index))
        running.add(task)
        task.add_done_callback(running.discard)
    if running:
        await asyncio.wait(running)
    return [r for r in results if r is not None]


async def _run(client_factory: Callable[[], Any], prompts: list, max_tokens: int, shape: LoadShape, warmup: list):
    async with client_factory() as client:
        try:
            identity = await client.identity()
        except Exception as exc:  # identity is informative; the load decides whether the run worked
            identity = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        if shape.warmup:
            first = warmup or prompts
            sent = (client.request(payload_of(first[i % len(first)]), max_tokens) for i in range(shape.warmup))
            await asyncio.gather(*sent)
        began = time.perf_counter_ns()
        results = await _offer(client, prompts, max_tokens, shape)
        wall = time.perf_counter_ns() - began
    return identity, results, wall


def run_request_load(
    client_factory: Callable[[], Any],
    prompts: list,
    max_tokens: int,
    shape: LoadShape,
    settings: dict[str, Any],
    warmup_prompts: list | None = None,
) -> tuple[Measurement | None, dict[str, Any]]:
    """Offer the load and return (measurement of the successful requests or None if none succeeded, section)."""
    identity, results, wall = asyncio.run(_run(client_factory, prompts, max_tokens, shape, warmup_prompts or []))
    ok = [r for r in results if r.ok]
    section = _section(identity, results, prompts, shape, max_tokens, wall)
    if not ok:
        return None, section
    measurement = Measurement(
        samples_ns=[r.end_ns - r.start_ns for r in ok],
        loop_wall_ns=wall,
        items_per_iteration=1,
        warmup_iterations=shape.warmup,
        warmup_ns=0,
        stopped_by="requests_sent",
        settings=settings,
        token_marks_ns=[[t - r.start_ns for t in r.token_ns] for r in ok],
        tokens_per_iteration=None,
        tokens_per_sample=section["output_tokens"],
        timer="time.perf_counter_ns at the client: request sent, each content chunk received, response ended",
    )
    return measurement, section


def _section(identity, results: list[StreamedRequest], prompts: list, shape: LoadShape, max_tokens: int, wall: int):
    """The record's `serving` section of one load (module docstring)."""
    ok = [r for r in results if r.ok]
    failed = [r for r in results if not r.ok]
    sent = [getattr(prompts[i % len(prompts)], "sent", None) for i, r in enumerate(results) if r.ok]
    retried = [reason for r in results for reason in getattr(r, "retried", None) or []]
    timings = [getattr(r, "engine_timings", None) for r in ok]
    fingerprint = next((r.fingerprint for r in ok if getattr(r, "fingerprint", None)), None)
    if fingerprint and isinstance(identity, dict) and not identity.get("system_fingerprint"):
        identity = {**identity, "system_fingerprint": fingerprint}
    section: dict[str, Any] = {
        "server": identity,
        "load": shape.to_dict(),
        "max_tokens": max_tokens,
        "requests_sent": len(results),
        "requests_ok": len(ok),
        "requests_failed": len(failed),
        "failure_reasons": dict(Counter((r.error or "unknown").split(":")[0] for r in failed)),
        "failures": [{"error": r.error, "after_ms": (r.end_ns - r.start_ns) / 1e6} for r in failed[:20]],
        "output_tokens": [r.output_tokens if r.output_tokens is not None else len(r.token_ns) for r in ok],
        "prompt_tokens": [r.prompt_tokens for r in ok],
        "chunks": [len(r.token_ns) for r in ok],
        "duration_ns": wall,
        "requests_retried": sum(1 for r in results if getattr(r, "retried", None)),
        "retry_reasons": dict(Counter(reason.split(":")[0] for reason in retried)),
    }
    if any(s is not None for s in sent):
        section["prompt_tokens_sent"] = sent
    if any(timings):
        section["engine_timings"] = timings
    return section
