"""Progress of long commands: rich's live displays on a terminal, plain lines anywhere else.

In a CI log or a file (``systolix simulate ... > log``) rich draws nothing until the end, so a Verilator build
and a run of minutes look like a hang. There every stage start, every tenth of the samples and, for a long
stage, a line every :data:`PLAIN_EVERY_SECONDS` are printed as plain lines on stdout instead, in order with the
tables; stderr keeps only the one line of an error.
"""

from __future__ import annotations

import re
import sys
import time
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["PLAIN_EVERY_SECONDS", "PlainProgress", "PlainStatus", "sample_progress", "stage_status"]

#: In plain mode, a stage whose message keeps changing is printed at most this often (seconds).
PLAIN_EVERY_SECONDS = 30.0

_ELAPSED = re.compile(r"\s*\(\d+ s\)")


class PlainStatus:
    """A ``console.status`` stand-in printing plain, time-stamped lines.

    ``update(text)`` prints ``text`` when it names a new stage, or when :data:`PLAIN_EVERY_SECONDS` have passed
    since the last line (a running ``(N s)`` counter in the text does not make a new stage).
    """

    def __init__(self, text: str, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.started = time.monotonic()
        self._stage: str | None = None
        self._printed = float("-inf")
        self.update(text)

    def __enter__(self) -> PlainStatus:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def _print(self, text: str) -> None:
        stream = self.stream if self.stream is not None else sys.stdout
        print(f"[{time.monotonic() - self.started:6.0f} s] {text}", file=stream, flush=True)

    def update(self, text: str) -> None:
        stage = _ELAPSED.sub("", text)
        now = time.monotonic()
        if stage != self._stage or now - self._printed >= PLAIN_EVERY_SECONDS:
            self._stage, self._printed = stage, now
            self._print(text)


class PlainProgress(PlainStatus):
    """Sample progress as plain lines: the first sample, every tenth of the total, the last one, and a line
    every :data:`PLAIN_EVERY_SECONDS` in between. Called as ``update(stage, done, total)``."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.started = time.monotonic()
        self._marks: dict[str, int] = {}
        self._printed = float("-inf")

    def update(self, stage: str, done: int, total: int) -> None:  # type: ignore[override]
        step = max(1, total // 10)
        mark = done // step
        now = time.monotonic()
        if (stage not in self._marks or mark != self._marks[stage] or done == total
                or now - self._printed >= PLAIN_EVERY_SECONDS):
            self._marks[stage], self._printed = mark, now
            self._print(f"{stage}: {done:,}/{total:,} samples")


def stage_status(console: Console, text: str):
    """``console.status(text)`` on a terminal, a :class:`PlainStatus` elsewhere. Use as a context manager whose
    value has ``update(text)``."""
    if console.is_terminal:
        return console.status(text)
    return PlainStatus(text)


class _Bar:
    def __init__(self, console: Console) -> None:
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=console, transient=True)
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> _Bar:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def update(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task(stage, total=total)
        self.bar.update(self.tasks[stage], completed=done)


def sample_progress(console: Console):
    """A context manager whose value's ``update(stage, done, total)`` shows sample progress: a rich progress bar
    on a terminal, :class:`PlainProgress` lines elsewhere."""
    if console.is_terminal:
        return _Bar(console)
    return PlainProgress()
