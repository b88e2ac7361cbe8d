"""Score the real CMS files in tests/samples/ (PFNano and NanoAOD v15) with the shipped taggers.

    python workflows/cms_files.py --out out/cms.coffea

Two views of the same scoring path:

* the columnar API (:func:`hepml_coffea.score_fatjets`) on every fat jet with pT > 300 GeV,
  |eta| < 2.4, printed next to CMS's own ParticleNet top score
  (``FatJet_particleNetWithMass_TvsQCD``) that NanoAOD v15 carries;
* the study processor (:class:`hepml_coffea.TaggerProcessor`) with the same selection, written
  to ``--out`` (the files are small, so the reference window 550-650 GeV holds few or no jets).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import awkward as ak
import numpy as np

from hepml_coffea import RunConfig, Selection, TaggerProcessor, run_fileset, score_fatjets
from hepml_coffea.cli import quiet_schema_warnings
from hepml_coffea.data.io import load_events

SAMPLES = Path(__file__).resolve().parents[1] / "tests" / "samples"


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the package logs its reports
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/cms.coffea")
    a = ap.parse_args()
    quiet_schema_warnings()
    selection = Selection(pt_min=300, pt_max=3000, abs_eta_max=2.4)

    events = load_events(SAMPLES / "nano_tt_v15.root")
    scores = score_fatjets(events, ["particlenet-lite", "pfn", "cnn", "lstm", "baseline"], selection=selection)
    scored = ~ak.is_none(scores["pfn"], axis=1)
    cms = ak.to_numpy(ak.flatten(events.FatJet.particleNetWithMass_TvsQCD[scored]))
    print(f"NanoAOD v15: {int(ak.sum(scored))} of {int(ak.sum(ak.num(events.FatJet)))} fat jets scored "
          f"({selection.describe()})")
    for name in ak.fields(scores.in_domain):
        ours = ak.to_numpy(ak.flatten(scores[name][scored])).astype(np.float64)
        r = np.corrcoef(ours, cms)[0, 1] if len(ours) > 2 else float("nan")
        inside = int(ak.sum(scores.in_domain[name][scored]))
        print(f"  {name:>18}: mean score {ours.mean():.3f}, correlation with CMS ParticleNet TvsQCD {r:.2f}; "
              f"{inside} of {len(ours)} jets inside its training domain")

    fileset = {"cms_pfnano": [str(SAMPLES / "pfnano.root")], "cms_ttbar_nano_v15": [str(SAMPLES / "nano_tt_v15.root")]}
    out = run_fileset(fileset, TaggerProcessor(selection=selection), config=RunConfig(executor="iterative"),
                      out=a.out)
    for ds, acc in out["datasets"].items():
        print(ds, acc["cutflow"])


if __name__ == "__main__":
    main()
