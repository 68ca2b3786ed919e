"""`k2 validate`: the seed's five validation sections as one command.

The checks are plain SQL: checks.sql holds the shared ones, checks/NN-<venue>.sql each exchange's
own (same header format); this module runs them and prints a report. A check
returns (problems, detail): 0 problems passes. Severity `fail` makes the exit status non-zero,
`warn` is reported but does not fail, `info` only informs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from k2.exchanges import ALL_ADAPTERS

INTERVAL_SECONDS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400}
_HEADER = re.compile(r"^-- check: (.+)$", re.M)


@dataclass
class Check:
    section: str
    id: str
    severity: str
    title: str
    sql: str
    repeat: str = ""


@dataclass
class Result:
    check: Check
    label: str
    problems: int
    detail: str

    @property
    def passed(self) -> bool:
        return self.problems == 0

    @property
    def status(self) -> str:
        if self.check.severity == "info":
            return "INFO"
        if self.passed:
            return "PASS"
        return "FAIL" if self.check.severity == "fail" else "WARN"


def check_files() -> list[str]:
    """checks.sql (the shared checks), then checks/NN-<venue>.sql (one exchange's own) in order."""
    package = resources.files("k2.quality")
    texts = [package.joinpath("checks.sql").read_text("utf-8")]
    folder = package.joinpath("checks")
    if folder.is_dir():
        texts += [p.read_text("utf-8") for p in sorted(folder.iterdir(), key=lambda p: p.name)
                  if p.name.endswith(".sql")]
    return texts


def load_checks() -> list[Check]:
    checks = []
    for text in check_files():
        parts = _HEADER.split(text)
        for header, body in zip(parts[1::2], parts[2::2]):
            fields = [f.strip() for f in header.split("|")]
            sql = "\n".join(line for line in body.strip().splitlines() if not line.startswith("--"))
            checks.append(Check(fields[0], fields[1], fields[2], fields[3], sql.strip().rstrip(";"),
                                fields[4] if len(fields) > 4 else ""))
    # the report groups by section; within one, the shared checks come first, then each venue's
    return sorted(checks, key=lambda c: c.section)


def _instances(check: Check):
    if check.repeat == "per-interval":
        for interval, seconds in INTERVAL_SECONDS.items():
            yield f"{check.id} [{interval}]", {
                "view": f"ohlcv_{interval}", "cross_view": f"ohlcv_{interval}_cross", "seconds": seconds}
    elif check.repeat == "per-exchange":
        for adapter in ALL_ADAPTERS:
            yield f"{check.id} [{adapter.bronze_table}]", {"exchange": adapter.name, "bronze": adapter.bronze_table}
    else:
        yield check.id, None


def run_checks(reader, only: set[str] | None = None) -> list[Result]:
    """Run every check (or those whose id is in `only`), each instance once."""
    results = []
    for check in load_checks():
        if only is not None and check.id not in only:
            continue
        for label, params in _instances(check):
            row = reader.rows(check.sql, params)[0]
            problems = int(row[0])
            detail = str(row[1]) if len(row) > 1 and row[1] is not None else ""
            results.append(Result(check, label, problems, detail))
    return results


def report(results: list[Result]) -> tuple[str, bool]:
    """The report: one line per check (piped: grep-able), wrapped under its status on a terminal."""
    import textwrap

    from k2.read.queries import table_width

    width = table_width()
    lines = ["K2 validation report", ""]
    section = None
    for r in results:
        if r.check.section != section:
            section = r.check.section
            lines.append(f"[{section}]")
        line = f"  {r.status:4}  {r.label}: {r.check.title}"
        if r.status == "INFO":
            line += f" -- {r.detail}"
        elif not r.passed:
            line += f" -- {r.problems} problem(s)" + (f", e.g. {r.detail[:200]}" if r.detail else "")
        lines.append(textwrap.fill(line, width - 1, subsequent_indent=" " * 8, break_on_hyphens=False)
                     if width and len(line) >= width else line)
    failed = [r for r in results if r.status == "FAIL"]
    warned = [r for r in results if r.status == "WARN"]
    passed = [r for r in results if r.status == "PASS"]
    lines.append("")
    lines.append(f"{len(passed)} passed, {len(failed)} failed, {len(warned)} warnings")
    lines.append("RESULT: " + ("FAIL" if failed else "PASS"))
    return "\n".join(lines), not failed
