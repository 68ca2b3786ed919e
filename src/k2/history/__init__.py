"""Trades that did not come from the live feed: recorded frame files (k2 load)."""
