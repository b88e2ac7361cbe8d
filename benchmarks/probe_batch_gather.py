"""Gathering one trimmed batch from a chunk's padded inputs: the engine's old
``np.take(a[..., :L], rows, axis=0)`` against its current single index
``a[rows, ..., :L]`` (``inference.engine._gather``), side by side.

    python benchmarks/probe_batch_gather.py [--jets 5000 20000] [--batch 128]

``np.take`` first makes the trimmed view contiguous, i.e. copies the whole chunk's array
for every batch, so its cost grows with the square of the jets per chunk; the single
index copies only the batch's rows. The jets are random with lengths in [20, 100), sorted
as the engine sorts them; the inputs are a sequence tagger's features ``(N, 7, 100)``.
Prints seconds per chunk for each and their ratio, and checks that both give the same arrays.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _batches(n: int, bs: int, rng: np.random.Generator) -> list[tuple[np.ndarray, int]]:
    lens = rng.integers(20, 100, n)
    order = np.argsort(lens, kind="stable")
    return [(order[s:s + bs], int(lens[order[min(s + bs, n) - 1]])) for s in range(0, n, bs)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jets", type=int, nargs="+", default=[5000, 20000])
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print("| jets per chunk | np.take on the trimmed view, s | one index, s | ratio |\n|---:|---:|---:|---:|")
    for n in args.jets:
        a = rng.random((n, 7, 100), dtype=np.float32)
        batches = _batches(n, args.batch, rng)
        rows, length = batches[len(batches) // 2]
        assert np.array_equal(np.take(a[..., :length], rows, axis=0), a[rows, ..., :length])
        times = {}
        for name, fn in (("take", lambda r, L: np.take(a[..., :L], r, axis=0)), ("index", lambda r, L: a[r, ..., :L])):
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                for r, L in batches:
                    fn(r, L)
                best = min(best, time.perf_counter() - t0)
            times[name] = best
        print(f"| {n:,} | {times['take']:.3f} | {times['index']:.4f} | {times['take'] / times['index']:.0f}x |")


if __name__ == "__main__":
    main()
