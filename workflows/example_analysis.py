"""An analysis that imports the processor and uses its histograms.

    python workflows/example_analysis.py ttbar.root qcd.root

Runs TaggerProcessor (shipped taggers) with the coffea Runner directly, then derives what an
analysis needs from the histograms: the top-tag efficiency and the QCD mistag rate of each
tagger at its eS = 50 % working point per pT bin, and the soft-drop mass spectrum of tagged jets.
"""

from __future__ import annotations

import sys

import hist
from coffea import processor
from coffea.nanoevents import PFNanoAODSchema

from hepml_coffea import TaggerProcessor

if __name__ == "__main__":
    ttbar, qcd = sys.argv[1], sys.argv[2]
    proc = TaggerProcessor()
    runner = processor.Runner(executor=processor.IterativeExecutor(), schema=PFNanoAODSchema, chunksize=5000)
    out = runner({"ttbar": [ttbar], "qcd": [qcd]}, proc, treename="Events")
    for tagger in proc.tagger_names:
        wp = out["ttbar"]["working_points"][{"tagger": tagger, "wp": "eS50"}]
        wq = out["qcd"]["working_points"][{"tagger": tagger, "wp": "eS50"}]
        top = wp[{"truth": hist.loc(1)}]
        bkg = wq[{"truth": hist.loc(0)}]
        eff = top[{"passed": True}].values() / (top.project("pt").values() + 1e-12)
        mis = bkg[{"passed": True}].values() / (bkg.project("pt").values() + 1e-12)
        print(f"{tagger:>18}: top-tag efficiency per pT bin {eff.round(3)}, mistag {mis.round(4)}")
    h = out["ttbar"]["scores"][{"tagger": "pfn", "truth": hist.loc(1)}]
    tagged = h[{"score": slice(hist.loc(0.5), None, sum), "pt": sum}]
    print("soft-drop mass of PFN-tagged top jets (score > 0.5):", tagged.values().round(0))
