"""Add the hash chain (probe.npz, ``weights_sha256`` in the runtime records) to artifacts made
before it existed; see :mod:`hepml_coffea.inference.probes`.

    python workflows/add_probes.py hepml_coffea/artifacts_data/{cnn,lstm,pfn,particlenet-lite}

Weights and runtimes are kept byte for byte (scores unchanged); each artifact is re-sealed
(its hash changes). A runtime that does not reproduce torch eager on the probe is refused.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from hepml_coffea.inference.probes import add_probe


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifacts", nargs="+", help="artifact directories or shipped tagger names")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    for a in args.artifacts:
        print(f"{a}: {json.dumps(add_probe(a))}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
