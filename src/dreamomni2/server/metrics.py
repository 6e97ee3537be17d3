"""What ``GET /metrics`` reports: requests by status, job outcomes, queue depth, latency percentiles."""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from typing import Any

__all__ = ["LATENCY_WINDOW", "Metrics", "percentile", "resident_bytes"]

#: Latencies kept for the percentiles (the most recent ones).
LATENCY_WINDOW: int = 2048


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` (0-100) of ``values``; ``None`` when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def resident_bytes() -> int | None:
    """This process's resident memory (Linux ``/proc``; ``None`` elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    import resource

    return pages * resource.getpagesize()


class Metrics:
    """Counters the app, the guard middleware and the queue update (all on the event loop thread)."""

    def __init__(self) -> None:
        self.started = time.time()
        self.statuses: Counter[str] = Counter()
        self.jobs: Counter[str] = Counter()
        self.peak_depth = 0
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)

    def count_status(self, status: int) -> None:
        """One finished ``/v1`` request with this status (499: the client went away)."""
        self.statuses[str(status)] += 1

    def count_job(self, outcome: str) -> None:
        """One job event: ``submitted``, ``started``, ``completed``, ``failed``, ``cancelled_waiting``,
        ``aborted_running``, ``rejected_full``."""
        self.jobs[outcome] += 1

    def observe_depth(self, depth: int) -> None:
        """The queue's depth after a change (for the peak)."""
        self.peak_depth = max(self.peak_depth, depth)

    def observe_latency(self, seconds: float) -> None:
        """One successful image request's time from arrival to response."""
        self._latencies.append(seconds)

    def typical_latency(self, default: float = 1.0) -> float:
        """The median latency so far (``default`` before the first)."""
        p50 = percentile(list(self._latencies), 50)
        return default if p50 is None else p50

    def snapshot(self, depth: int, max_depth: int, running: int) -> dict[str, Any]:
        """The JSON ``/metrics`` answers."""
        latencies = list(self._latencies)
        return {
            "uptime_seconds": round(time.time() - self.started, 3),
            "queue": {"depth": depth, "max": max_depth, "peak": self.peak_depth, "running": running},
            "requests": dict(sorted(self.statuses.items())),
            "jobs": dict(sorted(self.jobs.items())),
            "latency_seconds": {
                "count": len(latencies),
                "p50": percentile(latencies, 50),
                "p95": percentile(latencies, 95),
                "mean": sum(latencies) / len(latencies) if latencies else None,
            },
            "rss_bytes": resident_bytes(),
        }
