"""Generate the standard evaluation set (fresh seeds, never used for training), resumably.

    python workflows/make_eval_set.py --qcd-files 21 --ttbar-files 9 --events 10000 --out data/evalset

writes ``{out}/qcd_{seed}.root`` (seeds 4001, 4002, ...) and ``{out}/ttbar_{seed}.root``
(seeds 3001, 3002, ...), one file per seed, so parts land as they finish and a partial set
is usable. Files are produced in the order that keeps the two processes at the same
fraction of their target, and existing files are skipped (rerun to resume).

Seeds used elsewhere, which this set must never share: training 101-122 (ttbar) and
201-222 (qcd) (``workflows/make_training_set.py``), the old held-out file 301/401, the demo
9001/9002, the fresh training set 5001+/6001+ (``--train``), and the large training set
10001+ (ttbar) / 20001+ (qcd) (``workflows/make_training_set.py --target-top/--target-qcd``,
which refuses seeds 3001-4999).

With ``--train`` the same machinery writes a training set instead (seeds 5001+ ttbar,
6001+ qcd, default ``--out data/train2``).

Yield in the 550-650 GeV window is ~0.5 QCD jets and ~0.35 top jets per event, so the
target of >= 100k QCD and >= 30k top jets needs ~20 QCD and ~9 ttbar files of 10k events
(~80 events/s per process on an idle core when this set was made; ~1.5x that since the
generation speed-up, same events for the same seeds: benchmarks/results/generation.md). The standard set used 21 QCD files: 20 gave 99,438
QCD jets (TAGGERS.md).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hepml_coffea.samples import generate

EVAL_SEEDS = {"ttbar": 3001, "qcd": 4001}
TRAIN_SEEDS = {"ttbar": 5001, "qcd": 6001}


def plan(n_qcd: int, n_ttbar: int) -> list[tuple[str, int]]:
    """Order of (process, index) that keeps both processes at the same completed fraction.

    Parameters
    ----------
    n_qcd, n_ttbar : number of files per process

    Returns
    -------
    list of (process, index) pairs, ``index`` counting from 0 within each process.
    """
    done = {"qcd": 0, "ttbar": 0}
    total = {"qcd": n_qcd, "ttbar": n_ttbar}
    order: list[tuple[str, int]] = []
    while any(done[p] < total[p] for p in done):
        proc = min((p for p in done if done[p] < total[p]), key=lambda p: ((done[p] + 1) / total[p], p))
        order.append((proc, done[proc]))
        done[proc] += 1
    return order


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qcd-files", type=int, default=21)
    ap.add_argument("--ttbar-files", type=int, default=9)
    ap.add_argument("--events", type=int, default=10000, help="events per file")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--train", action="store_true", help="write a training set (seeds 5001+/6001+) instead")
    ap.add_argument("--out", default=None, help="output folder (default data/evalset, or data/train2 with --train)")
    args = ap.parse_args()
    seeds = TRAIN_SEEDS if args.train else EVAL_SEEDS
    out = Path(args.out or ("data/train2" if args.train else "data/evalset"))
    out.mkdir(parents=True, exist_ok=True)
    for process, k in plan(args.qcd_files, args.ttbar_files):
        seed = seeds[process] + k
        path = out / f"{process}_{seed}.root"
        if path.exists():
            continue
        t0 = time.perf_counter()
        generate(process, args.events, seed, path, workers=args.workers)
        dt = time.perf_counter() - t0
        print(f"{path}: {args.events} events, seed {seed}, in {dt:.0f} s ({args.events / dt:.0f} events/s)",
              flush=True)


if __name__ == "__main__":
    main()
