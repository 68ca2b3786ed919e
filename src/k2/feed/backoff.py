"""Reconnect delays: exponential, capped, with full jitter so that many connections dropped at
once (an exchange restart) do not reconnect in lockstep."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, base_s: float = 1.0, cap_s: float = 30.0, max_attempts: int = -1,
                 rng: random.Random | None = None):
        if base_s <= 0 or cap_s < base_s:
            raise ValueError("backoff needs 0 < base <= cap")
        self.base_s, self.cap_s, self.max_attempts = base_s, cap_s, max_attempts
        self.attempts = 0
        self._rng = rng or random.Random()

    @property
    def exhausted(self) -> bool:
        """True when a limit is set (max_attempts >= 0) and it has been used up."""
        return self.max_attempts >= 0 and self.attempts >= self.max_attempts

    def next_delay(self) -> float:
        """Delay before the next attempt: uniform in [base/2, min(cap, base * 2^n)]."""
        ceiling = min(self.cap_s, self.base_s * (2 ** min(self.attempts, 30)))
        self.attempts += 1
        return self._rng.uniform(min(self.base_s / 2, ceiling), ceiling)

    def reset(self) -> None:
        self.attempts = 0
