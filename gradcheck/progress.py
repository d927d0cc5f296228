"""A progress bar for long checks, drawn on a terminal only.

The engine reports ``(done, total)`` loss evaluations through ``check(..., progress=...)``.
:class:`ProgressBar` stays silent for the first :data:`DELAY` seconds (a quick check should not
flicker), draws nothing when its stream is not a terminal (logs and pipes stay clean), and
redraws at most every :data:`INTERVAL` seconds so that drawing never costs more than the check.
"""

from __future__ import annotations

import time
from typing import TextIO

DELAY = 1.0  # seconds before the bar first appears
INTERVAL = 0.1  # seconds between redraws
WIDTH = 30  # characters of bar

# Module-level so tests can substitute a fake clock.
clock = time.monotonic


class ProgressBar:
    """Callable as ``bar(done, total)``; call :meth:`close` when the check ends."""

    def __init__(self, stream: TextIO, label: str = "", delay: float = DELAY):
        self.stream = stream
        self.label = label
        self.delay = delay
        isatty = getattr(stream, "isatty", None)
        self.enabled = bool(isatty and isatty())
        self.start = clock()
        self.last_draw = float("-inf")
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = clock()
        if now - self.start < self.delay or now - self.last_draw < INTERVAL:
            return
        self.last_draw = now
        self.drawn = True
        self.stream.write("\r" + render_bar(done, total, self.label))
        self.stream.flush()

    def close(self) -> None:
        """Erase the bar (if one was drawn) so the report starts on a clean line."""
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.drawn = False


def render_bar(done: int, total: int, label: str = "") -> str:
    """``label [#######.......]  45%  1234/2740 loss evaluations`` (no line ending)."""
    total = max(total, done, 1)
    filled = WIDTH * done // total
    percent = 100 * done // total
    prefix = f"{label} " if label else ""
    return (
        f"{prefix}[{'#' * filled}{'.' * (WIDTH - filled)}] {percent:3d}%  "
        f"{done}/{total} loss evaluations"
    )
