"""Progress lines of long loops: how many done, how fast, and how long until the end."""

from __future__ import annotations

import time
from collections.abc import Callable


def format_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Counts finished items of ``total`` and logs ``"<what>: done/total (rate/s), ETA h:mm:ss"``
    every ``interval_s`` seconds and once at the end."""

    def __init__(self, total: int, what: str, log: Callable[[str], None], *, interval_s: float = 10.0):
        self.total, self.what, self.log, self.interval_s = total, what, log, interval_s
        self.done = 0
        self.start = self.last = time.monotonic()

    def advance(self) -> None:
        self.done += 1
        now = time.monotonic()
        if self.done == self.total or now - self.last >= self.interval_s:
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            ending = (f"ETA {format_duration((self.total - self.done) / rate)}" if self.done < self.total
                      else f"done in {format_duration(now - self.start)}")
            self.log(f"{self.what}: {self.done}/{self.total} ({rate:.1f}/s), {ending}")
