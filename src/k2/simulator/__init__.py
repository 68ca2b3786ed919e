"""The exchange simulator: local servers that speak each exchange's protocol byte for byte.

Tests, `k2 demo` and the benchmarks run against it instead of the internet. A seeded engine
(engine.py) trades the same assets on every venue; one module per venue (binance.py, kraken.py,
coinbase.py, bybit.py, okx.py, bitfinex.py, gemini.py; formats.py has their shared number formats)
turns those trades into the venue's frames and answers its requests; server.py holds what venues
share; faults.py breaks things on purpose; record.py writes the ground truth; runner.py drives
it all; command.py is `k2 simulate`; process.py runs that in a child process; bench.py measures
the send rate (`python -m k2.simulator.bench`).

    from k2.simulator import SimConfig, Simulator
    async with Simulator(SimConfig(port=0, rate=1000, seed=3)) as sim:
        print(sim.urls)   # {"binance": {"ws": "ws://127.0.0.1:...", "rest": ...}, "kraken": {...}}
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from k2.simulator.faults import Faults
    from k2.simulator.process import SimulatorProcess
    from k2.simulator.runner import SimConfig, Simulator

__all__ = ["Faults", "SimConfig", "Simulator", "SimulatorProcess"]
_HOMES = {"Faults": "faults", "SimConfig": "runner", "Simulator": "runner", "SimulatorProcess": "process"}


def __getattr__(name: str) -> Any:
    """Import on first use: `k2 --help` builds the simulate parser without loading the servers."""
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(f"k2.simulator.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'k2.simulator' has no attribute {name!r}")
