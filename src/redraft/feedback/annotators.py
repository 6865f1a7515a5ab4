"""Simulated annotators: scripted clients that label through the HTTP API, with noise.

The deciding functions are pure (item view in, judgement out) so a policy can be tested on
its own; :func:`simulate_annotators` runs many annotators concurrently against a server.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from redraft.errors import RedraftError
from redraft.feedback.store import MAX_RATING, MIN_RATING
from redraft.tasks.base import answers_match, extract_answer

Preference = Literal["correct_then_shorter", "shorter", "longer", "random"]
RETRIES = 5


def quality(
    text: str, reference: str | None, prefer: Preference, match: Literal["exact", "numeric"] = "numeric"
) -> float:
    """How much a simulated annotator likes an answer, in [0, 1]; higher is better."""
    brevity = 1.0 / (1.0 + len(text) / 20.0)
    if prefer == "shorter":
        return brevity
    if prefer == "longer":
        return 1.0 - brevity
    correct = reference is not None and answers_match(extract_answer(text, match), reference, match)
    return 0.5 * correct + 0.5 * brevity  # correct beats wrong whatever the lengths; then shorter


def decide(
    item: dict[str, Any],
    prefer: Preference,
    noise: float,
    rng: random.Random,
    match: Literal["exact", "numeric"] = "numeric",
) -> dict[str, Any]:
    """The judgement for an item as served by the API (see queue.item_view).

    ``noise``: probability of flipping a comparison, of swapping each adjacent pair of a
    ranking, of moving a rating one step, of leaving an answer uncorrected.
    """
    outputs = item["outputs"]
    if prefer == "random":
        scores = [rng.random() for _ in outputs]
    else:
        scores = [quality(output["text"], item["reference_answer"], prefer, match) for output in outputs]
    kind = item["kind"]
    if kind == "compare":
        if scores[0] == scores[1]:
            return {"choice": "tie"}
        better_first = scores[0] > scores[1]
        if rng.random() < noise:
            better_first = not better_first
        return {"choice": "a" if better_first else "b"}
    if kind == "rank":
        order = sorted(range(len(outputs)), key=lambda i: -scores[i])
        for i in range(len(order) - 1):
            if rng.random() < noise:
                order[i], order[i + 1] = order[i + 1], order[i]
        return {"ranking": [outputs[i]["id"] for i in order]}
    if kind == "rate":
        rating = MIN_RATING + round(scores[0] * (MAX_RATING - MIN_RATING))
        if rng.random() < noise:
            rating += rng.choice((-1, 1))
        return {"rating": min(MAX_RATING, max(MIN_RATING, rating))}
    text, reference = outputs[0]["text"], item["reference_answer"]
    if reference is None or rng.random() < noise:
        return {"corrected": text}
    return {"corrected": reference}


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) by the nearest-rank method."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class SimulationReport:
    labels: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # token -> label responses
    latencies_s: list[float] = field(default_factory=list)  # every HTTP request
    retries: int = 0
    seconds: float = 0.0

    @property
    def total_labels(self) -> int:
        return sum(len(labels) for labels in self.labels.values())

    def summary(self) -> dict[str, Any]:
        return {
            "annotators": len(self.labels),
            "labels": self.total_labels,
            "requests": len(self.latencies_s),
            "retries": self.retries,
            "seconds": round(self.seconds, 3),
            "labels_per_s": round(self.total_labels / self.seconds, 1) if self.seconds else None,
            "p50_ms": round(1000 * percentile(self.latencies_s, 50), 2) if self.latencies_s else None,
            "p99_ms": round(1000 * percentile(self.latencies_s, 99), 2) if self.latencies_s else None,
        }


async def _call(
    client: httpx.AsyncClient, report: SimulationReport, method: str, path: str, token: str, body: Any = None
) -> dict[str, Any]:
    """One API call, retried on connection errors and 5xx; label posts are idempotent, so this is safe."""
    for attempt in range(RETRIES):
        started = time.perf_counter()
        try:
            response = await client.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})
        except httpx.TransportError:
            if attempt == RETRIES - 1:
                raise
            report.retries += 1
            await asyncio.sleep(0.05 * 2**attempt)
            continue
        report.latencies_s.append(time.perf_counter() - started)
        if response.status_code < 500 or attempt == RETRIES - 1:
            response.raise_for_status()
            return response.json()
        report.retries += 1
        await asyncio.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


async def _annotator(
    base_url, timeout_s, report, token, prefer, noise, max_labels, rng, match, slots: asyncio.Semaphore
) -> None:
    # One client (one keep-alive connection) per annotator, as each person has their own browser.
    # A client shared by all of them costs more than the server: before every request httpx
    # checks each pooled connection for staleness (a socket poll per connection).
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with slots, httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout_s) as client:
        labels = report.labels.setdefault(token, [])
        item = (await _call(client, report, "GET", "/api/next", token))["item"]
        while item is not None and (max_labels is None or len(labels) < max_labels):
            judgement = decide(item, prefer, noise, rng, match)
            ask_next = max_labels is None or len(labels) + 1 < max_labels
            answer = await _call(
                client,
                report,
                "POST",
                f"/api/labels?next={str(ask_next).lower()}",
                token,
                {"item_id": item["item_id"], **judgement},
            )
            labels.append(answer)
            item = answer.pop("next_item")


async def _simulate(
    base_url, tokens, prefer, noise, max_labels, concurrency, seed, match, timeout_s
) -> SimulationReport:
    report = SimulationReport()
    slots = asyncio.Semaphore(concurrency or len(tokens))
    started = time.perf_counter()
    await asyncio.gather(
        *(
            _annotator(
                base_url,
                timeout_s,
                report,
                token,
                prefer,
                noise,
                max_labels,
                random.Random(f"{seed}-{i}"),
                match,
                slots,
            )
            for i, token in enumerate(tokens)
        )
    )
    report.seconds = time.perf_counter() - started
    return report


def simulate_annotators(
    base_url: str,
    tokens: list[str],
    policy: Preference = "correct_then_shorter",
    noise: float = 0.0,
    max_labels: int | None = None,
    concurrency: int | None = None,
    seed: int = 0,
    match: Literal["exact", "numeric"] = "numeric",
    timeout_s: float = 60.0,
) -> SimulationReport:
    """Let one simulated annotator per token label until the queue is empty for them or they
    have given ``max_labels`` labels; ``concurrency`` of them work at once (default: all).

    Call from synchronous code (it runs its own event loop), e.g. against ``running_server``.
    """
    if not 0.0 <= noise <= 1.0:
        raise RedraftError("noise must be a probability in [0, 1]")
    return asyncio.run(_simulate(base_url, tokens, policy, noise, max_labels, concurrency, seed, match, timeout_s))
