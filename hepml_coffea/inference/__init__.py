"""Inference: per-process model cache, batching, devices; the Dask worker plugin."""
