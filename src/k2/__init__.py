"""K2: crypto trade feeds -> bronze (native) -> silver (normalized) -> gold (OHLCV) in ClickHouse.

The Python API (k2.read.api):

    import k2
    db = k2.connect()                       # ./k2data or K2_DATA_DIR; through `k2 run` while it runs
    df = db.ohlcv("BTC/USDT", "1m", exchange="binance", format="pandas")

`connect`, `Connection` and the errors load on first use (PEP 562), so `import k2` stays as light
as the lean `k2 feed` process needs it to be.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["connect", "Connection", "K2Error", "QueryError", "__version__"]

if TYPE_CHECKING:  # for readers and type checkers; loaded lazily at run time
    from k2.errors import K2Error, QueryError
    from k2.read.api import Connection, connect

#: attribute -> module that defines it
_LAZY = {"connect": "k2.read.api", "Connection": "k2.read.api", "K2Error": "k2.errors", "QueryError": "k2.errors"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'k2' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
