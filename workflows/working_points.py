"""Working points (score thresholds at eS = 30 / 50 / 70 %) of a tagger that was not trained
here (an imported weaver model), from truth-matched top jets of generated ttbar files, written
into its ``metrics.json`` (the artifact is re-sealed):

    python workflows/working_points.py particlenet-jetclass --signal data/train_ft/ttbar_5001.root \
        --background data/train_ft/qcd_6001.root

Use files that are not the evaluation set's (the standard set uses seeds 3001+/4001+): the
thresholds are then set on independent jets, as the trained taggers' are on their test split.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    from hepml_coffea.artifacts import load_artifact, update_artifact
    from hepml_coffea.evaluation.dataset import load_eval_sample
    from hepml_coffea.training.metrics import threshold_at

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tagger", help="shipped name or artifact folder")
    ap.add_argument("--signal", nargs="+", required=True, help="ttbar files (fully contained tops are used)")
    ap.add_argument("--background", nargs="+", required=True,
                    help="QCD files (read alongside, as the evaluation reads them; not used for the thresholds)")
    args = ap.parse_args(argv)
    art = load_artifact(args.tagger)
    sample = load_eval_sample(args.signal, args.background, [str(art.path)], log=None)
    use, labels = sample.labels("contained")
    scores = sample.scores[str(art.path)][use]
    top = labels == 1
    ok = top & np.isfinite(scores)
    wps = {f"eS{int(t * 100)}": float(threshold_at(labels[ok], scores[ok], t)) for t in (0.3, 0.5, 0.7)}
    metrics = dict(art.metrics)
    metrics["working_points"] = wps
    metrics["working_points_from"] = {"files": [Path(f).name for f in args.signal], "top_jets": int(ok.sum()),
                                      "signal": "fully contained tops, 550 < pT < 650 GeV, |eta| < 2"}
    new = update_artifact(art.path, files={"metrics.json": json.dumps(metrics, indent=2, sort_keys=True).encode()})
    print(f"{art.name}: {wps} from {int(ok.sum())} top jets; artifact hash {new[:16]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
