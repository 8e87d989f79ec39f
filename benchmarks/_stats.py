"""What every benchmark reports: the median, the mean (total / count) and the p99, never the median alone.

fsync tails dominate a durable step's cost: on the development VM the embedded step's mean was about
twice its median. The mean is what a run of N steps pays (N × mean); the p99 is what a slow step costs.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def summary(samples: Sequence[float]) -> dict[str, float]:
    """Median, mean and p99 (nearest rank) of per-item durations in seconds, as milliseconds."""
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, -(-len(ordered) * 99 // 100) - 1))
    return {
        "median_ms": statistics.median(ordered) * 1e3,
        "mean_ms": statistics.fmean(ordered) * 1e3,
        "p99_ms": ordered[rank] * 1e3,
    }


def runs(totals: Sequence[float]) -> dict[str, float]:
    """Whole-run durations in seconds: the median run, the mean run and the slowest, as milliseconds."""
    return {
        "median_ms": statistics.median(totals) * 1e3,
        "mean_ms": statistics.fmean(totals) * 1e3,
        "max_ms": max(totals) * 1e3,
    }
