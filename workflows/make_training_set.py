"""Generate training sets (resumable, one file per seed).

Grow a set toward a number of training jets per class (issue 22: >= 200k each)::

    nice -n 19 python workflows/make_training_set.py --target-top 200000 --target-qcd 200000 \\
        --events 10000 --workers 1 --out data/train_big --manifest-copy docs/train/data_manifest.json

writes ``{out}/ttbar_{seed}.root`` (seeds 10001-10999) and ``{out}/qcd_{seed}.root`` (20001-20999), the
class furthest from its target first, with the evaluation set's generation settings; counts
the training jets of every finished file (550 < pT < 650 GeV, |eta| < 2; ttbar: fully
contained top jets), logs events/s per file, stops when both targets are reached, and keeps
``{out}/manifest.json`` (and ``--manifest-copy``) up to date. Rerun the same command to
resume: finished files are kept, an interrupted file (``.root.tmp``) is generated again.

Rebuild the committed set on another machine (the same files, content checked by sha256)::

    python workflows/make_training_set.py --files-from docs/train/data_manifest.json --out data/train_big --workers 2
See :mod:`hepml_coffea.samples.training_set`.

The shipped taggers' training set (the older fixed-size mode, seeds 101+ ttbar, 201+ qcd)::

    python workflows/make_training_set.py --files 12 --events 15000 --out data/train

The seeds of the held-out evaluation set (3001+ / 4001+, ``workflows/make_eval_set.py``) are
never used here.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from pathlib import Path

from hepml_coffea.samples import generate


def _fixed_size(args: argparse.Namespace) -> None:
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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target-top", type=int, default=None, help="training top jets wanted (target mode)")
    ap.add_argument("--target-qcd", type=int, default=None, help="training QCD jets wanted (target mode)")
    ap.add_argument("--manifest-copy", default=None,
                    help="also write the manifest here (target mode; e.g. docs/train/data_manifest.json)")
    ap.add_argument("--max-files", type=int, default=None, help="stop after this many new files (target mode)")
    ap.add_argument("--files-from", default=None,
                    help="rebuild exactly the files of this manifest (e.g. docs/train/data_manifest.json) and "
                         "check their content sha256; targets default to the manifest's")
    ap.add_argument("--files", type=int, default=10, help="files per process (fixed-size mode)")
    ap.add_argument("--first-file", type=int, default=0, help="fixed-size mode")
    ap.add_argument("--events", type=int, default=None, help="events per file (default 10000; 20000 fixed-size)")
    ap.add_argument("--workers", type=int, default=1,
                    help="target mode: files generated at once (one process each); fixed-size: processes per file")
    ap.add_argument("--out", default=None, help="output folder (default data/train_big, fixed-size data/train)")
    args = ap.parse_args(argv)
    if args.files_from:
        import json

        targets = json.loads(Path(args.files_from).read_text()).get("targets", {})
        args.target_top = args.target_top if args.target_top is not None else targets.get("ttbar", 0)
        args.target_qcd = args.target_qcd if args.target_qcd is not None else targets.get("qcd", 0)
    if (args.target_top is None) != (args.target_qcd is None):
        ap.error("give both --target-top and --target-qcd")
    if args.target_top is None:
        args.events = args.events or 20000
        args.out = args.out or "data/train"
        _fixed_size(args)
        return
    from hepml_coffea.samples.training_set import grow_training_set

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%Y-%m-%dT%H:%M:%S",
                        stream=sys.stdout, force=True)
    command = "python workflows/make_training_set.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    grow_training_set(args.out or "data/train_big", args.target_top, args.target_qcd,
                      events_per_file=args.events or 10000, workers=args.workers,
                      manifest_copy=args.manifest_copy, command=command, max_files=args.max_files,
                      files_from=args.files_from)


if __name__ == "__main__":
    main()
