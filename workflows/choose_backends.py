"""Re-choose the CPU backend of taggers by measurement, on real selected jets.

For each artifact: export ``model.onnx``, time torch eager, ``torch.compile`` and ONNX
Runtime at one thread on the same jets, and record the fastest exact one in ``model.yaml``
(``cpu_backend``), re-sealing the artifact (:func:`hepml_coffea.inference.tuning.choose_backend`).
This is how the shipped taggers' ``cpu_backend`` records are made; run it after
re-training a tagger, or on the machine type of your batch slots::

    python workflows/choose_backends.py --files data/bench/ttbar_9101.root data/bench/qcd_9201.root \\
        [--taggers cnn pfn] [--jets 2000] [--artifacts DIR]

Without ``--artifacts`` the shipped taggers (``hepml_coffea/artifacts_data``) are updated.
Prints the measured jets per second of each backend and the choice.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import awkward as ak
import numpy as np


def selected_jets(files: list[str], max_jets: int, cand_fields: tuple[str, ...] = (),
                  jet_fields: tuple[str, ...] = ()) -> tuple[ak.Array, ak.Array]:
    """Constituents and fat jets of the first ``max_jets`` selected, valid jets of ``files``
    (the processor's default selection), taken alternately from the files, carrying the
    candidate / jet fields a spec reads (``spec.required_cand_fields()``, ...)."""
    from hepml_coffea.data.constituents import fatjet_constituents
    from hepml_coffea.data.io import read_arrays
    from hepml_coffea.selection import Selection

    sel = Selection()
    cands, jets = [], []
    per_file = max(1, max_jets // len(files))
    for f in files:
        jc = fatjet_constituents(read_arrays(f), cand_fields=cand_fields, jet_fields=jet_fields)
        jc = jc.select(sel.mask(jc) & jc.valid)
        cands.append(jc.cands[:per_file])
        jets.append(jc.jets[:per_file])
    return ak.concatenate(cands), ak.concatenate(jets)


def main(argv: list[str] | None = None) -> int:
    import torch

    from hepml_coffea.artifacts import load_artifact, shipped_taggers
    from hepml_coffea.inference.backends import CPU_BACKENDS
    from hepml_coffea.inference.tuning import choose_backend
    from hepml_coffea.representations import build

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", nargs="+", required=True, help="PFNano / NanoAOD files with fat jets and constituents")
    ap.add_argument("--taggers", nargs="*", default=None, help="artifact names (default: every torch tagger)")
    ap.add_argument("--artifacts", default=None, help="folder of artifacts (default: the shipped ones)")
    ap.add_argument("--jets", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backends", nargs="+", default=None, help="backends to time (default: all CPU backends)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.artifacts:
        root = Path(args.artifacts)
        found = {p.name: p for p in sorted(root.iterdir()) if (p / "manifest.json").is_file()}
    else:
        found = {k: Path(v) for k, v in shipped_taggers().items()}
    names = args.taggers or list(found)
    missing = [n for n in names if n not in found]
    if missing:
        raise SystemExit(f"no artifact named {missing} (have {sorted(found)})")
    fields: tuple[set[str], set[str]] = (set(), set())
    for name in names:
        spec = load_artifact(found[name]).spec
        if spec is not None:
            fields[0].update(spec.required_cand_fields())
            fields[1].update(spec.required_jet_fields())
    cands, jets = selected_jets(args.files, args.jets, tuple(sorted(fields[0])), tuple(sorted(fields[1])))
    if not len(jets):
        raise SystemExit(f"no selected fat jet with constituents in {args.files}")
    print(f"{len(jets)} selected jets from {len(args.files)} files")
    for name in names:
        art = load_artifact(found[name])
        if art.input_kind == "observables":
            continue
        built = build(cands, jets, art.spec)
        x = {k: np.asarray(built[k]) for k in art.input_names}
        chosen = choose_backend(found[name], inputs=x, repeats=args.repeats,
                                backends=tuple(args.backends or CPU_BACKENDS))
        rec = load_artifact(found[name]).meta["cpu_backend"]
        rates = ", ".join(f"{b} {r['jets_per_s']:,.0f}" if "jets_per_s" in r else f"{b} ({r['error'][:60]})"
                          for b, r in rec["results"].items())
        print(f"{name}: chose {chosen} (jets/s at 1 thread: {rates})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
