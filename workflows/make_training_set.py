"""Generate the training set for the shipped taggers (resumable, one file per seed).

    python workflows/make_training_set.py --files 10 --events 20000 --workers 1 --out data/train

writes ``{out}/ttbar_{seed}.root`` and ``{out}/qcd_{seed}.root``, alternating processes
so a partial run still has both classes; files already present are skipped. Seeds
start at 101 (ttbar) and 201 (qcd); the held-out evaluation sample uses other seeds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hepml_coffea.samples import generate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=10, help="files per process")
    ap.add_argument("--events", type=int, default=20000, help="events per file")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", default="data/train")
    ap.add_argument("--first-file", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.out)
    for k in range(args.first_file, args.first_file + args.files):
        for process, base in (("ttbar", 101), ("qcd", 201)):
            path = out / f"{process}_{base + k}.root"
            if path.exists():
                continue
            t0 = time.perf_counter()
            generate(process, args.events, base + k, path, workers=args.workers)
            dt = time.perf_counter() - t0
            print(f"{path}: {args.events} events in {dt:.0f} s ({args.events / dt:.0f} events/s)", flush=True)


if __name__ == "__main__":
    main()
