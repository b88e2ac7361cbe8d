"""A boosted all-hadronic ttbar analysis with its own processor, using our scores as a column.

    python workflows/example_analysis.py --out out/ttbar_analysis ttbar.root qcd.root
    python workflows/example_analysis.py --out out/cms tests/samples/pfnano.root tests/samples/nano_tt_v15.root

Nothing here is hepml_coffea's processor: the event selection, the histograms and the plots are
the analysis's own. hepml_coffea only adds a tagger score beside ``events.FatJet``
(:class:`hepml_coffea.FatJetTagger`) and gives the working point stored in the artifact.

Selection: at least two fat jets with pT > 400 GeV and |eta| < 2.4; the two leading ones are
top-tagged with the tagger's eS = 50 % working point. Histograms per dataset (hist): m(tt) of
the two leading jets and the leading jet's soft-drop mass, in categories of 0, 1 and 2 tags.
Each file is its own dataset (named after the file) unless a fileset JSON is given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import awkward as ak
import hist
import numpy as np
from coffea import processor
from coffea.nanoevents import PFNanoAODSchema

from hepml_coffea import FatJetTagger
from hepml_coffea.config import TaggerConfig


class TTbarAllHadronic(processor.ProcessorABC):  # type: ignore[misc]
    """Two top-tagged fat jets: m(tt) and leading-jet soft-drop mass by number of tags.

    Parameters
    ----------
    tagger : shipped tagger name or artifact directory
    working_point : name of a working point stored in the artifact (``"eS30"``, ``"eS50"``, ``"eS70"``)
    pt_min, abs_eta_max : fat-jet selection
    device : where the tagger runs (``"auto"``: the worker's GPU if it has one)
    """

    def __init__(self, tagger: str = "particlenet-lite", working_point: str = "eS50", pt_min: float = 400.0,
                 abs_eta_max: float = 2.4, device: str = "auto") -> None:
        self.tagger = FatJetTagger([tagger], device=device)
        cfg: TaggerConfig = self.tagger.taggers[0]
        if working_point not in cfg.working_points:
            msg = f"tagger {cfg.name!r} has no working point {working_point!r}; it has {sorted(cfg.working_points)}"
            raise ValueError(msg)
        self.name = cfg.name
        self.threshold = cfg.working_points[working_point]
        self.working_point = working_point
        self.pt_min = pt_min
        self.abs_eta_max = abs_eta_max

    def _histograms(self) -> dict[str, hist.Hist]:
        ntag = hist.axis.Integer(0, 3, name="ntags", label="top tags", underflow=False, overflow=False)
        return {
            "mtt": hist.Hist(ntag, hist.axis.Regular(40, 500, 4500, name="mtt", label="$m_{t\\bar{t}}$ [GeV]"),
                             storage=hist.storage.Weight()),
            "msd": hist.Hist(ntag, hist.axis.Regular(30, 0, 300, name="msd", label="leading-jet $m_{SD}$ [GeV]"),
                             storage=hist.storage.Weight()),
        }

    def process(self, events: Any) -> dict[str, Any]:
        dataset = events.metadata.get("dataset", "unknown")
        out = {"histograms": self._histograms(),
               "cutflow": {"events": len(events), "two_fatjets": 0, "tagged_jets": 0, "unscored_leading": 0}}
        fatjets = events.FatJet
        good = (fatjets.pt > self.pt_min) & (abs(fatjets.eta) < self.abs_eta_max)
        # our scores, as a column beside FatJet (None where a jet was not scored)
        score = self.tagger(events, mask=good)[self.name]
        fatjets = ak.with_field(fatjets, score, "topscore")
        selected = fatjets[good]
        two = ak.num(selected) >= 2
        lead = selected[two][:, :2]
        out["cutflow"]["two_fatjets"] = int(ak.sum(two))
        if len(lead) == 0:
            return {dataset: out}
        unscored = ak.is_none(lead.topscore, axis=1)
        tagged = ak.fill_none(lead.topscore >= self.threshold, False)
        ntags = ak.to_numpy(ak.sum(tagged, axis=1))
        j1, j2 = lead[:, 0], lead[:, 1]
        mtt = ak.to_numpy((j1 + j2).mass)
        out["histograms"]["mtt"].fill(ntags=ntags, mtt=mtt)
        out["histograms"]["msd"].fill(ntags=ntags, msd=ak.to_numpy(j1.msoftdrop))
        out["cutflow"]["tagged_jets"] = int(ak.sum(tagged))
        out["cutflow"]["unscored_leading"] = int(ak.sum(unscored))
        return {dataset: out}

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        return accumulator


def plot(output: dict[str, Any], outdir: Path, title: str) -> list[Path]:
    """m(tt) and leading-jet soft-drop mass per number of tags, one plot per dataset (mplhep)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    plt.style.use(mplhep.style.CMS)
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for ds, acc in output.items():
        for key in ("mtt", "msd"):
            h = acc["histograms"][key]
            fig, ax = plt.subplots(figsize=(9, 7))
            for n in range(3):
                sub = h[{"ntags": n}]
                if sub.sum().value > 0:
                    mplhep.histplot(sub, ax=ax, label=f"{n} tag{'s' if n != 1 else ''}", yerr=True)
            ax.set_yscale("log")
            ax.set_ylabel("events")
            ax.legend(title=f"{ds}\n{title}", fontsize=14, title_fontsize=14)
            path = outdir / f"{key}_{ds}.png"
            fig.savefig(path, dpi=80, bbox_inches="tight")
            plt.close(fig)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", help="ROOT files (each its own dataset)")
    ap.add_argument("--fileset", help="fileset JSON instead of files")
    ap.add_argument("--tagger", default="particlenet-lite")
    ap.add_argument("--working-point", default="eS50")
    ap.add_argument("--executor", choices=["iterative", "futures"], default="iterative")
    ap.add_argument("--chunksize", type=int, default=5000)
    ap.add_argument("--out", default="out/ttbar_analysis")
    a = ap.parse_args(argv)
    if a.fileset:
        fileset = json.loads(Path(a.fileset).read_text())
    elif a.files:
        fileset = {Path(f).stem: [str(f)] for f in a.files}
    else:
        ap.error("give ROOT files or --fileset")
    from hepml_coffea.cli import quiet_schema_warnings

    quiet_schema_warnings()
    proc = TTbarAllHadronic(tagger=a.tagger, working_point=a.working_point)
    executor = processor.IterativeExecutor() if a.executor == "iterative" else processor.FuturesExecutor(workers=2)
    runner = processor.Runner(executor=executor, schema=PFNanoAODSchema, chunksize=a.chunksize)
    output = runner(fileset, proc, treename="Events")
    out = Path(a.out)
    title = f"{proc.name} {a.working_point} (score >= {proc.threshold:.3f})"
    for ds, acc in output.items():
        cf = acc["cutflow"]
        counts = acc["histograms"]["mtt"].project("ntags").values()
        print(f"{ds}: {cf['events']} events, {cf['two_fatjets']} with two fat jets; 0/1/2 tags: "
              f"{' / '.join(str(int(c)) for c in counts)}; leading jets not scored: {cf['unscored_leading']}")
    for p in plot(output, out / "plots", title):
        print(f"wrote {p}")
    from coffea.util import save

    out.mkdir(parents=True, exist_ok=True)
    save(output, out / "analysis.coffea")
    return output


if __name__ == "__main__":
    main()
