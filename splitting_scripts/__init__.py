"""Splitting an extraction pickle into the benchmark's per-class .h5 layout."""
