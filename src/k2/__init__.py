"""K2: crypto trade feeds -> bronze (native) -> silver (normalized) -> gold (OHLCV) in ClickHouse."""

__version__ = "0.1.0"
