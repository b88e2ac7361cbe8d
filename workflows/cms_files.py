"""Run the shipped taggers on the real CMS files in tests/samples/ (PFNano and NanoAOD v15).

    python workflows/cms_files.py --out out/cms.coffea

NanoAOD v15 carries CMS's own ParticleNet top score (``FatJet_particleNetWithMass_TvsQCD``):
the script prints it next to ours for the jets with pT > 300 GeV (the files are small, so the
reference window 550-650 GeV holds few or no jets; the selection here is wider).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import awkward as ak
import numpy as np

from hepml_coffea import Selection, TaggerProcessor
from hepml_coffea.run import run_fileset

SAMPLES = Path(__file__).resolve().parents[1] / "tests" / "samples"

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="out/cms.coffea")
    ap.add_argument("--scores", default="out/cms_scores")
    a = ap.parse_args()
    fileset = {
        "cms_pfnano": [str(SAMPLES / "pfnano.root")],
        "cms_ttbar_nano_v15": [str(SAMPLES / "nano_tt_v15.root")],
    }
    proc = TaggerProcessor(selection=Selection(pt_min=300, pt_max=2000, abs_eta_max=2.4), save_scores=a.scores)
    out = run_fileset(fileset, a.out, executor="iterative", processor_instance=proc)
    for ds in fileset:
        print(ds, out[ds]["cutflow"])
    table = ak.concatenate([ak.from_parquet(p) for p in sorted(Path(a.scores).glob("cms_ttbar*.parquet"))]) \
        if list(Path(a.scores).glob("cms_ttbar*.parquet")) else None
    if table is not None:
        import uproot

        cms = uproot.open(SAMPLES / "nano_tt_v15.root")["Events"]["FatJet_particleNetWithMass_TvsQCD"].array()
        ref = np.array([cms[e][j] for e, j in zip(ak.to_numpy(table.event_index), ak.to_numpy(table.jet_index))])
        for f in table.fields:
            if f.startswith("score_"):
                r = np.corrcoef(ak.to_numpy(table[f]), ref)[0, 1] if len(ref) > 2 else float("nan")
                print(f"{f}: mean {np.mean(ak.to_numpy(table[f])):.3f}, correlation with CMS ParticleNet TvsQCD {r:.2f}")
