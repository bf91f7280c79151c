"""Progress lines for the long steps outside `fit`: what ran, on how much, in how long.

Silent unless enabled: the `tfrs-twotower` command enables it (`--verbose 0` keeps it off); in Python,
`progress.enable()`. Lines go to stderr, so stdout keeps only results (`query --json`, reports).

Example:
>>> enable(True, stream=sys.stdout)
>>> with step("Encoding the corpus") as done:
...     done("398 candidates")  # doctest: +ELLIPSIS
Encoding the corpus: 398 candidates in ... s
>>> enable(False)
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Callable, Iterator, TextIO

_state: dict = {"on": False, "stream": None}


def enable(on: bool = True, stream: TextIO | None = None) -> None:
    """Turns the progress lines on (to `stream`, default stderr) or off."""
    _state["on"], _state["stream"] = bool(on), stream


def enabled() -> bool:
    return _state["on"]


def log(message: str) -> None:
    """Prints `message` as a progress line when enabled."""
    if _state["on"]:
        print(message, file=_state["stream"] or sys.stderr, flush=True)


@contextlib.contextmanager
def step(what: str) -> Iterator[Callable[[str], None]]:
    """Times the block; `done(counts)` inside it sets what the line says was done.

    On a terminal a `what ...` line shows while the block runs, replaced by the result line."""
    stream = _state["stream"] or sys.stderr
    live = _state["on"] and stream.isatty()
    if live:
        print(f"{what} ...", end="\r", file=stream, flush=True)
    outcome = ["done"]
    started = time.perf_counter()
    yield lambda text: outcome.__setitem__(0, text)
    elapsed = time.perf_counter() - started
    if live:
        print(" " * (len(what) + 4), end="\r", file=stream)
    log(f"{what}: {outcome[0]} in {elapsed:.1f} s")
