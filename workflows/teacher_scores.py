"""Compute a teacher's scores on the training files once (cached beside the data), as they land.

    python workflows/teacher_scores.py --data data/train_big --teacher particlenet [--watch 600]

For every finished ``ttbar_*.root`` / ``qcd_*.root`` in ``--data`` (a generation still writing
``*.root.tmp`` is not touched), the teacher scores the jets the training will select (truth-matched
tops from ttbar files, every QCD jet in the window) and they are stored in ``{data}/teacher/``
with a manifest (:mod:`hepml_coffea.training.teacher`); a training with ``--teacher`` then reads
them instead of running the teacher. ``--watch S`` keeps looking for new files until none has
landed for S seconds (to run beside ``make_training_set.py``).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from hepml_coffea.scoring import FatJetTagger
from hepml_coffea.selection import Selection
from hepml_coffea.training.dataset import _load
from hepml_coffea.training.teacher import teacher_cache_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--teacher", default="particlenet")
    ap.add_argument("--watch", type=float, default=0.0, help="seconds without a new file before stopping")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    tagger = FatJetTagger([args.teacher], device="cpu", domain=False)
    cfg = tagger.taggers[0]
    selection = Selection()
    data = Path(args.data)
    last_new = time.monotonic()
    while True:
        todo = []
        for f in sorted(data.glob("*.root")):
            top = f.name.startswith("ttbar_")
            if not (top or f.name.startswith("qcd_")):
                continue
            if not teacher_cache_path(f, cfg.name, cfg.hash, top).exists():
                todo.append((f, top))
        for f, top in todo:
            _load([f], top, selection, teacher=tagger)  # computes and caches the file's teacher scores
            last_new = time.monotonic()
        if not args.watch or time.monotonic() - last_new > args.watch:
            break
        time.sleep(30)


if __name__ == "__main__":
    main()
