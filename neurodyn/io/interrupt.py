"""Ctrl-C at safe points.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be when the signal
arrives, also inside JAX's own Python code (a dispatch half done, XLA's garbage-collection
callback). Interrupted there, the runtime is left inconsistent: the interrupt was lost in 1
of 8 MNIST trainings (``Exception ignored in: _xla_gc_callback``, training went on) and the
process crashed at exit with a segmentation fault in 2 of 8.

While a command runs, the first Ctrl-C therefore only sets a flag (and says so on stderr);
the long loops call :func:`check` between their compiled steps, where nothing is in
flight, and that raises ``KeyboardInterrupt`` there. A second Ctrl-C raises at once, for a
user who will not wait.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

_requested = threading.Event()


def check() -> None:
    """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed since :func:`deferred` began."""
    if _requested.is_set():
        _requested.clear()
        raise KeyboardInterrupt


def _handler(signum, frame) -> None:
    if _requested.is_set():
        raise KeyboardInterrupt
    _requested.set()
    print("neurodyn: stopping at the next safe point (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Within this context (main thread only), Ctrl-C is deferred to :func:`check`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _requested.clear()
    previous = signal.signal(signal.SIGINT, _handler)
    try:
        yield
        check()  # a Ctrl-C during the last stretch still counts
    finally:
        signal.signal(signal.SIGINT, previous)
        _requested.clear()
