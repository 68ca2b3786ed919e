"""SIGTERM before a service takes the signal over: a clean stop, not the default kill.

`k2 run` stopped by systemd while it repairs its data dir at start, or a long `k2 query`, used to
die mid-statement with no line (the default action). The command line installs this handler first;
a service replaces it with its own while it runs (lifecycle.py) and gives it back when it stops.
Everything K2 does at start is safe to stop between two statements (the repair resumes next time).
"""

from __future__ import annotations

import signal
import threading


class Terminated(KeyboardInterrupt):
    """Raised by SIGTERM outside a service: the command line prints one line and exits 143."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def sigterm_stops_cleanly() -> None:
    """Turn SIGTERM into `Terminated` in this process (main thread only; a handler someone else
    installed is left alone)."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_terminated)
