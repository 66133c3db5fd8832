"""Background change in an emulated account: the same pacing for every emulator."""

from __future__ import annotations

from datetime import datetime

#: At most this many changes are applied on one request, however long the emulator sat idle.
MAX_CHURN_PER_REQUEST = 500


class ChurnMeter:
    """Turns elapsed clock time into change times: ``per_minute`` changes a minute, stamped
    evenly between the previous request and this one (never before a request already
    answered, so churn never lands behind a client's checkpoint)."""

    def __init__(self, per_minute: float, start: datetime) -> None:
        self.per_minute = per_minute
        self._at = start
        self._credit = 0.0

    def due(self, now: datetime) -> list[datetime]:
        """The stamps of the changes due by ``now`` (empty when churn is off)."""
        if self.per_minute <= 0 or now <= self._at:
            return []
        start, self._at = self._at, now
        self._credit += (now - start).total_seconds() / 60 * self.per_minute
        whole = int(self._credit)
        self._credit -= whole
        due = min(whole, MAX_CHURN_PER_REQUEST)
        return [start + (now - start) * (k + 1) / due for k in range(due)]
