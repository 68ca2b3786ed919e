"""Number and time formats the simulated venues share (each venue picks the ones its wire uses)."""

from __future__ import annotations

import math
import random
import time


def decimals_for(step: float) -> int:
    """Decimal places of a grid step: 0.01 -> 2, 1e-8 -> 8, 1 -> 0."""
    return max(0, min(18, round(-math.log10(step)))) if step < 1 else 0


def fixed(x: float, places: int) -> str:
    """97512.4 with 2 places -> "97512.40" (Coinbase prices, Gemini prices)."""
    return "%.*f" % (places, x)


def trimmed(x: float, places: int = 8) -> str:
    """0.20000000 -> "0.2", 97512.0 -> "97512" (sizes as most venues print them)."""
    text = "%.*f" % (places, x)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def significant(x: float, digits: int = 5) -> str:
    """Bitfinex prices: five significant digits, as a JSON number (97512, 3412.1, 0.18234)."""
    if x <= 0:
        return "0"
    places = max(0, digits - 1 - math.floor(math.log10(x)))
    return trimmed(round(x, places), min(places, 12))


def rfc3339(ts_us: int) -> str:
    """Epoch µs -> "2026-07-15T12:00:01.101871Z"."""
    sec, us = divmod(ts_us, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{us:06d}Z"


def uuid4(rng: random.Random) -> str:
    """A random (seeded) UUID in its canonical text form."""
    h = "%032x" % rng.getrandbits(128)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"
