"""Metrics from a ledger's rows, for ``leadfactory-llm metrics``: a Prometheus endpoint
for every process that writes one ledger (a SQLite file or PostgreSQL), without any
telemetry in those processes.

:class:`LedgerFeed` reads the rows settled since its last read and turns each into the
:class:`~.facts.AttemptFacts` the in-process telemetry would have recorded, for the
same :class:`~.instruments.MetricObserver`: attempts by outcome and error class, tokens,
dollars, latencies and cache hits, under the same names. A row still pending is read
again until it is settled; a reservation given back unsent (no latency, no charge) is
not an attempt.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from .facts import AttemptFacts
from .instruments import MetricObserver

__all__ = ["LedgerFeed", "attempt_of"]

SETTLED = ("success", "error", "cache_hit")


def attempt_of(row: dict[str, Any]) -> AttemptFacts | None:
    """The attempt a settled ledger row records (None: a reservation given back unsent)."""
    charged = row.get("latency_ms") or row.get("cost_usd") or row.get("total_tokens")
    if row["outcome"] == "error" and not charged:
        return None
    return AttemptFacts(
        provider=str(row["provider"]),
        model=row.get("model"),
        outcome=str(row["outcome"]),
        error_class=row.get("error_class"),
        latency_s=float(row.get("latency_ms") or 0.0) / 1000.0,
        cost_usd=float(row.get("cost_usd") or 0.0),
        input_tokens=int(row.get("prompt_tokens") or 0),
        output_tokens=int(row.get("completion_tokens") or 0),
    )


class LedgerFeed:
    """Feeds each settled row of ``ledger`` once into ``observer`` (thread-safe).

    ``stale_after``: a row pending longer than this is given up on (its worker died) and
    no longer holds the reads back.
    """

    def __init__(
        self, ledger: Any, observer: MetricObserver, *, stale_after: float = 3600.0
    ) -> None:
        self._ledger, self._observer = ledger, observer
        self._stale = timedelta(seconds=stale_after)
        self._since: datetime | None = None  # the first read takes the whole ledger
        self._seen: dict[Any, datetime] = {}  # rows counted, at or after _since
        self._lock = threading.Lock()

    def read(self) -> int:
        """Count the rows settled since the last read; returns how many."""
        with self._lock:
            rows = self._ledger.rows(since=self._since)
            now = datetime.now(UTC)
            held: datetime | None = None  # the oldest row still pending
            newest = self._since
            counted = 0
            for row in rows:
                ts = datetime.fromisoformat(str(row["ts"]))
                newest = ts if newest is None else max(newest, ts)
                if row["outcome"] not in SETTLED:
                    if now - ts < self._stale:
                        held = ts if held is None else min(held, ts)
                    continue
                if row["id"] in self._seen:
                    continue
                self._seen[row["id"]] = ts
                attempt = attempt_of(row)
                if attempt is not None:
                    self._observer.attempt(attempt)
                    counted += 1
            self._since = held if held is not None else newest
            since = self._since
            if since is not None:
                self._seen = {key: ts for key, ts in self._seen.items() if ts >= since}
            return counted
