"""The batch's progress bar: tqdm on stderr, shown when stderr is a terminal (or asked for).

Done/total, the rate and the time left come from tqdm; the postfix adds how many
failed and the dollars spent. tqdm is imported only when the bar is shown.
"""

from __future__ import annotations

import sys
from typing import IO, Any

__all__ = ["Progress", "shows_progress"]


def shows_progress(progress: bool | None, stream: IO[str] | None = None) -> bool:
    """``progress`` when given; else whether ``stream`` (stderr) is a terminal."""
    if progress is not None:
        return bool(progress)
    stream = sys.stderr if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


class Progress:
    """A bar over ``total`` items, ``done`` of them already finished (resumed)."""

    def __init__(self, total: int, *, shown: bool, done: int = 0, unit: str = "item") -> None:
        self._bar: Any = None
        self.failed = 0
        if shown:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, initial=done, unit=unit, file=sys.stderr, dynamic_ncols=True
            )

    def advance(self, *, failed: bool, spent: float) -> None:
        """One more item finished."""
        self.failed += failed
        if self._bar is not None:
            self._bar.set_postfix_str(f"failed {self.failed}, ${spent:.4f}", refresh=False)
            self._bar.update()

    def note(self, text: str) -> None:
        """A line above the bar (a stop, say), without breaking it."""
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
