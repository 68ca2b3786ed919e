"""What a person sees on stderr while a command works: progress bars with rate and ETA, the live
status of `k2 run`, and log lines printed above them. Built on Rich (docs/adr/0023).

On a terminal the display redraws in place at any width; when stderr is not a terminal, or with
NO_COLOR, TERM=dumb or `--no-progress` (K2_NO_PROGRESS=1), every update is a plain line of text
(no escape codes), at most one per PLAIN_EVERY seconds plus the last one. Rich is imported only
when a display is drawn, so a command that draws none loads nothing more.

Any layer may use this module (it imports nothing of K2's): a long job takes a `Progress` (or
None), the command line decides where it goes.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, TextIO

#: seconds between two plain progress lines (off a terminal)
PLAIN_EVERY = 10.0
#: a job that took this long says how it went in a closing line even off a terminal
FINAL_AFTER = 2.0


def fancy(stream: TextIO | None = None) -> bool:
    """True when `stream` (default stderr) is a terminal that may be redrawn: not with NO_COLOR
    (https://no-color.org), TERM=dumb or K2_NO_PROGRESS."""
    stream = stream or sys.stderr
    if os.environ.get("NO_COLOR") or os.environ.get("K2_NO_PROGRESS", "") not in ("", "0"):
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def console(stream: TextIO | None = None):
    """A Rich console on `stream` (default stderr) that draws only where `fancy` says so."""
    from rich.console import Console

    stream = stream or sys.stderr
    on = fancy(stream)
    return Console(file=stream, force_terminal=on, no_color=not on, highlight=False, emoji=False,
                   color_system="auto" if on else None)


def human(n: float, digits: int = 3) -> str:
    """A count for reading: 1,234 / 12.3k / 4.56M (three significant digits from 10,000 on)."""
    n = float(n)
    if abs(n) < 10_000:
        return f"{n:,.0f}"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            v = n / div
            return f"{v:.{max(0, digits - len(str(int(abs(v)))))}f}{suffix}"
    return f"{n:,.0f}"


def human_bytes(n: float) -> str:
    n = float(n)
    for div, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if abs(n) >= div:
            return f"{n / div:.1f} {suffix}"
    return f"{n:.0f} B"


def duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "-:--:--"
    s = int(max(0.0, seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class _LogsAbove:
    """While a display is drawn, the log handlers that write to stderr write through it, so a log
    line prints above the bar or the status table instead of being glued to it."""

    def __init__(self, rich_console):
        self.console = rich_console
        self.moved: list[tuple[logging.StreamHandler, Any]] = []

    def __enter__(self):
        for h in logging.getLogger().handlers:
            if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) in (sys.stderr, sys.__stderr__):
                self.moved.append((h, h.stream))
                h.setStream(_ConsoleStream(self.console))
        return self

    def __exit__(self, *exc):
        for h, stream in self.moved:
            h.setStream(stream)
        self.moved.clear()


class _ConsoleStream:
    """A file-like object a logging handler writes to: each line goes to the console above the live display."""

    def __init__(self, rich_console):
        self.console = rich_console

    def write(self, text: str) -> int:
        text = text.rstrip("\n")
        if text:
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        pass


class Progress:
    """One long job's progress: `update(done, total)` as it goes, `close()` at the end (or use it as a
    context manager). On a terminal: label, bar, done/total, rate and ETA, redrawn in place. Off a
    terminal: a plain line every PLAIN_EVERY seconds and one at the end."""

    def __init__(self, label: str, total: float | None = None, unit: str = "rows",
                 stream: TextIO | None = None, enabled: bool = True, show_rate: bool = True,
                 final_line: bool = False):
        self.label, self.total, self.unit = label, total, unit
        self.show_rate = show_rate
        #: off a terminal, the closing line is printed when progress lines were, when the job took
        #: FINAL_AFTER seconds or more, or when this says so
        self.final_line = final_line
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.done = 0.0
        self.note = ""
        self.started = time.monotonic()
        self._last_plain = self.started
        self._last_push = 0.0
        self._lines = 0
        self._rich = None
        self._task = None
        self._logs: _LogsAbove | None = None
        self._closed = False
        if enabled and fancy(self.stream):
            self._start_rich()

    def _start_rich(self) -> None:
        from rich.progress import (BarColumn, Progress as RichProgress, TaskProgressColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        con = console(self.stream)
        self._rich = RichProgress(
            TextColumn("{task.description}"), BarColumn(bar_width=None), TaskProgressColumn(),
            TextColumn("{task.fields[count]}"), TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=con, transient=False, refresh_per_second=4, speed_estimate_period=10)
        self._task = self._rich.add_task(self.label, total=self.total, count="", rate="")
        self._logs = _LogsAbove(con).__enter__()
        self._rich.start()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def _fmt(self, n: float) -> str:
        return human_bytes(n) if self.unit == "B" else f"{human(n)} {self.unit}"

    def _rate_text(self, rate: float) -> str:
        return f"{self._fmt(rate)}/s" if self.show_rate else ""

    def _count(self) -> str:
        if self.unit == "%":  # the percentage column says it
            return ""
        if not self.total:
            return self._fmt(self.done)
        if self.unit == "B":
            return f"{human_bytes(self.done)}/{human_bytes(self.total)}"
        return f"{human(self.done)}/{human(self.total)} {self.unit}"

    def update(self, done: float, total: float | None = None, note: str = "") -> None:
        if self._closed or not self.enabled:
            return
        self.done = done
        if total is not None:
            self.total = total
        if note:
            self.note = note
        if self._rich is not None:
            now = time.monotonic()
            if now - self._last_push < 0.1 and not (self.total and done >= self.total):
                return  # Rich redraws 4 times a second: a hot loop need not tell it more often
            self._last_push = now
            task = self._rich.tasks[0]
            rate = task.speed if task.speed is not None else self.rate()
            self._rich.update(self._task, completed=done, total=self.total,
                              description=f"{self.label}{' ' + self.note if self.note else ''}",
                              count=self._count(), rate=self._rate_text(rate))
            return
        now = time.monotonic()
        if now - self._last_plain >= PLAIN_EVERY:
            self._last_plain = now
            self._plain_line()

    def log(self, line: str) -> None:
        """An event line (a partition written, a file done): above the bar, or plain on its own line."""
        if self._rich is not None:
            self._rich.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            self.stream.write(line + "\n")
            self.stream.flush()

    def advance(self, n: float = 1) -> None:
        self.update(self.done + n)

    def _plain_line(self, final: bool = False) -> None:
        elapsed = time.monotonic() - self.started
        count = self._count()
        parts = [f"{self.label}{' ' + self.note if self.note else ''}" + (f": {count}" if count else "")]
        if self.total:
            parts.append(f"{min(self.done / self.total, 1.0):.0%}")
        if self.show_rate:
            parts.append(self._rate_text(self.rate()))
        if final:
            parts.append(f"done in {duration(elapsed)}")
        elif self.total and self.done:
            parts.append(f"ETA {duration(elapsed * (self.total - self.done) / self.done)}")
        self.stream.write(", ".join(parts) + "\n")
        self.stream.flush()
        self._lines += 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.note = ""
        if self._rich is not None:
            self._rich.update(self._task, description=self.label)
            self.update_final()
            self._rich.stop()
            if self._logs is not None:
                self._logs.__exit__(None, None, None)
        elif self.enabled and (self._lines or self.final_line
                               or time.monotonic() - self.started >= FINAL_AFTER):
            self._plain_line(final=True)  # off a terminal: one line saying how the job went

    def update_final(self) -> None:
        total = self.total if self.total else self.done
        self._rich.update(self._task, completed=self.done, total=total, count=self._count(),
                          rate=self._rate_text(self.rate()))


def progress(label: str, total: float | None = None, unit: str = "rows", enabled: bool = True) -> Progress:
    return Progress(label, total, unit, enabled=enabled)


class LiveStatus:
    """A table redrawn in place once a second while a service runs (`render()` returns a Rich
    renderable); log lines print above it. Off a terminal it draws nothing: the caller logs a
    plain line now and then instead (see `plain_every`)."""

    def __init__(self, render: Callable[[], Any], stream: TextIO | None = None):
        self.render = render
        self.stream = stream or sys.stderr
        self.live = None
        self._logs: _LogsAbove | None = None
        self._lock = threading.Lock()

    @property
    def drawn(self) -> bool:
        return self.live is not None

    def start(self) -> "LiveStatus":
        if not fancy(self.stream):
            return self
        from rich.live import Live

        con = console(self.stream)
        self.live = Live(self.render(), console=con, refresh_per_second=2, transient=False,
                         redirect_stdout=True, redirect_stderr=True, auto_refresh=False)
        self._logs = _LogsAbove(con).__enter__()
        self.live.start()
        return self

    def refresh(self) -> None:
        if self.live is not None:
            with self._lock:
                self.live.update(self.render(), refresh=True)

    def stop(self) -> None:
        if self.live is not None:
            self.refresh()
            self.live.stop()
            self.live = None
        if self._logs is not None:
            self._logs.__exit__(None, None, None)
            self._logs = None


def status_table(title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]], caption: str, ok: bool,
                 alert_rows: frozenset[int] = frozenset()):
    """A status table for LiveStatus: numbers right-aligned, the health line under it (red when a
    condition fails). Rich fits it to the terminal's width, folding cells when it must."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, expand=False, title=None, show_edge=False)
    numeric = {"trades", "/s", "last msg", "gaps", "latency", "rows", "rows/s"}
    for name in columns:
        table.add_column(name, justify="right" if name in numeric else "left", overflow="fold")
    for i, row in enumerate(rows):
        table.add_row(*row, style="red" if i in alert_rows else None)
    head = Text(f"{title}: ", style="bold")
    head.append(caption, style="green" if ok else "bold red")
    return Group(head, table)


# -- tables for reading ------------------------------------------------------------------------------
def _unescape_tsv(field: str) -> str:
    if "\\" not in field:
        return field
    out, i = [], 0
    table = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\", "0": "\0", "b": "\b", "f": "\f", "'": "'"}
    while i < len(field):
        c = field[i]
        if c == "\\" and i + 1 < len(field):
            out.append(table.get(field[i + 1], field[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_tsv(text: str) -> tuple[list[str], list[str], list[list[str]]]:
    """ClickHouse TabSeparatedWithNamesAndTypes: (names, types, rows of strings)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) < 2:
        return [], [], []
    names = [_unescape_tsv(f) for f in lines[0].split("\t")]
    types = lines[1].split("\t")
    return names, types, [[_unescape_tsv(f) for f in line.split("\t")] for line in lines[2:]]


def _base_type(t: str) -> str:
    """Decimal(38, 18) of Nullable(Decimal(38, 18)), SimpleAggregateFunction(max, Decimal(38, 18))..."""
    while True:
        for wrapper in ("Nullable(", "LowCardinality("):
            if t.startswith(wrapper):
                t = t[len(wrapper):-1]
                break
        else:
            if t.startswith("SimpleAggregateFunction("):
                t = t[len("SimpleAggregateFunction("):-1].partition(",")[2].strip()
                continue
            return t


def _decimals_for(values: list[str]) -> int:
    """Decimal places that show a column for reading: what its values need (trailing zeros
    dropped) when that is 8 or fewer (prices and sizes as the venues send them stay exact);
    derived values (VWAP, quote volume: 18 places) are rounded to about 9 significant digits.
    At least 2, so prices line up: 97,499.00 under 97,503.20."""
    need = digits = 0
    for v in values:
        whole, _, frac = v.partition(".")
        if frac:
            n = len(frac.rstrip("0"))
            if n > need:
                need = n
        whole = whole.lstrip("-+").lstrip("0")
        if len(whole) > digits and whole.isdigit():
            digits = len(whole)
    if need <= 8:
        return max(need, 2)
    return max(2, 9 - digits) if digits else 8


_ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def _utc_times(values: list[str]) -> list[str] | None:
    """ISO-8601 UTC times ("2026-12-05T17:43:00Z") for reading: "2026-12-05 17:43" (seconds only
    when some are not :00); None when the column holds anything else."""
    present = [v for v in values if v]
    if not present or not all(_ISO_Z.match(v) for v in present):
        return None
    out = [v[:-1].replace("T", " ") if v else v for v in values]
    if all(v.endswith(":00") for v in out if v):
        out = [v[:-3] for v in out]
    elif all(len(v) == 26 and v.endswith("000") for v in out if v):  # microseconds that are milliseconds
        out = [v[:-3] for v in out]
    return out


def _format_column(name: str, ctype: str, values: list[str]) -> tuple[str, list[str], bool]:
    """(header, cells, right-aligned). Counts get thousands separators, decimals a shared number of
    places, UTC times a compact form (the header says UTC); ids and text are shown as stored."""
    base = _base_type(ctype)
    if base.startswith("String"):
        times = _utc_times(values)
        if times is not None:
            return f"{name} (UTC)", times, False
    header, (cells, right) = name, _format_values(name, base, values)
    return header, cells, right


def _format_values(name: str, base: str, values: list[str]) -> tuple[list[str], bool]:
    is_id = name.endswith("_id") or name in ("id", "sequence")
    if base.startswith(("Int", "UInt")) and not is_id:
        return [f"{int(v):,}" if v.lstrip("-").isdigit() else v for v in values], True
    if base.startswith(("Decimal", "Float")):
        places = _decimals_for(values)
        out = []
        for v in values:
            try:  # Decimal: exact, whatever the number of digits (a float keeps about 16)
                out.append(format(Decimal(v), f",.{places}f"))
            except (InvalidOperation, ValueError):
                out.append(v)
        return out, True
    if base.startswith(("Int", "UInt")):
        return values, True
    return [v.replace("\n", "\\n").replace("\t", " ") for v in values], False


def format_table(names: list[str], types: list[str], rows: list[list[str]], width: int | None = None,
                 drop_first: tuple[str, ...] = ()) -> tuple[str, list[str]]:
    """A plain-text table for reading (no escape codes): a header, a rule, one line per row,
    numbers right-aligned and formatted (format_column). With `width`, columns named in
    `drop_first` (in that order), then the last columns, are left out until the table fits.
    Returns (text, the names of the columns left out) -- the caller says which were left out."""
    cols = []
    for i, (name, ctype) in enumerate(zip(names, types)):
        header, cells, right = _format_column(name, ctype, [r[i] if i < len(r) else "" for r in rows])
        cols.append((name, cells, right, max([len(header)] + [len(c) for c in cells]), header))
    hidden: list[str] = []

    def total(cs) -> int:
        return sum(c[3] for c in cs) + 2 * max(0, len(cs) - 1)

    if width:
        order = [n for n in drop_first if n in names] + [n for n in reversed(names) if n not in drop_first]
        while total(cols) > width and len(cols) > 1 and order:
            name = order.pop(0)
            kept = [c for c in cols if c[0] != name]
            if len(kept) < len(cols):
                hidden.append(name)
                cols = kept
    lines = ["  ".join((c[4].rjust(c[3]) if c[2] else c[4].ljust(c[3])) for c in cols).rstrip(),
             "  ".join("-" * c[3] for c in cols)]
    for r in range(len(rows)):
        lines.append("  ".join((c[1][r].rjust(c[3]) if c[2] else c[1][r].ljust(c[3])) for c in cols).rstrip())
    return "\n".join(lines) + "\n", hidden
