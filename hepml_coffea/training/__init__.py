"""Training: data loading, loop, metrics."""
