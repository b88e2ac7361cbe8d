"""Add the hash chain (probe.npz, ``weights_sha256`` in the runtime records) to artifacts made
before it existed; see :mod:`hepml_coffea.inference.probes`.

    python workflows/add_probes.py hepml_coffea/artifacts_data/{cnn,lstm,pfn,particlenet-lite} \
        --files data/evalset/ttbar_3001.root data/evalset/qcd_4001.root

``--files``: real jets to choose the probe jets from (synthetic jets otherwise; a model
whose scores saturate on them, as ParticleNet-Lite's do, needs real ones).

Weights and runtimes are kept byte for byte (scores unchanged); each artifact is re-sealed
(its hash changes). A runtime that does not reproduce torch eager on the probe is refused.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from hepml_coffea.artifacts import load_artifact
from hepml_coffea.inference.probes import inputs_from_files
from hepml_coffea.inference.tuning import add_probe


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifacts", nargs="+", help="artifact directories or shipped tagger names")
    ap.add_argument("--files", nargs="*", default=None, help="ROOT files whose jets the probes are chosen from")
    ap.add_argument("--replace", action="store_true", help="make a new probe even if one for the weights exists")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    for a in args.artifacts:
        inputs = inputs_from_files(load_artifact(a), args.files) if args.files else None
        print(f"{a}: {json.dumps(add_probe(a, inputs, replace=args.replace))}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
