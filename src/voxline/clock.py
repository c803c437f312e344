"""Time as a parameter: services read a `Clock`, so tests can run timers fast and exactly."""

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Wall-clock time in integer milliseconds since the epoch (what the API reports)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a monotonic clock (what latency marks use)."""
        ...


class SystemClock:
    """The real clock."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()
