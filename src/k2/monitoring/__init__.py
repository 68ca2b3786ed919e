"""Metrics for Prometheus. Pure Python at import time: `k2 feed` serves them without numpy."""
