"""Errors a user can cause. The CLI prints them as one line and exits non-zero, no traceback."""


class K2Error(Exception):
    """A problem the user can fix (bad argument, missing file, data dir in use...)."""

    exit_code = 2


class WarehouseBusy(K2Error):
    """The embedded data dir is held by another process that does not serve reads."""


class QueryError(K2Error):
    """A query the warehouse refused or could not finish: ClickHouse's error code and name (read
    by the ClickHouse-compatible endpoint, which answers with them) and a one-line message."""

    def __init__(self, message: str, code: int = 0, name: str = ""):
        super().__init__(message)
        self.code, self.name = code, name


class FrameError(ValueError):
    """A frame that cannot be parsed; its message is the reason stored in the rejects table."""


def first_line(exc: BaseException) -> str:
    """ClickHouse's message without its code prefix and stack: what a user can act on."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    if "DB::Exception:" in line:
        line = line.split("DB::Exception:", 1)[1].strip()
    return line[:400]
