"""Errors a user can cause. The CLI prints them as one line and exits non-zero, no traceback."""


class K2Error(Exception):
    """A problem the user can fix (bad argument, missing file, data dir in use...)."""

    exit_code = 2


class WarehouseBusy(K2Error):
    """The embedded data dir is held by another process that does not serve reads."""


class FrameError(ValueError):
    """A frame that cannot be parsed; its message is the reason stored in the rejects table."""
