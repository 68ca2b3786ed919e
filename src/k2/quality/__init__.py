"""Data quality: validation checks, rejects, gaps."""
