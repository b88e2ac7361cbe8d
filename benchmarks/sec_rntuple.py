"""RNTuple input vs the same events as TTree (issue 14 item 5).

The same generated events are written twice (``_common.write_events``): an uncompressed
TTree and an RNTuple. Timed on both, in this process:

* listing the fields (``tree.keys()``) with uproot's own sub-field lookup and with
  ``hepml_coffea.data.io``'s index (the cause of the slowness: O(fields^2));
* ``hepml_coffea.analysis.summary.constituent_summary`` (what ``hepml-coffea summary`` prints);
* the processor (all shipped taggers, iterative executor).

    python benchmarks/sec_rntuple.py [--quick]
"""

from __future__ import annotations

import contextlib
import io
import time
from typing import Any

from _common import TARGETS, Context, fmt, log, set_threads, write_events


def _listing(path: str, upstream: bool) -> float:
    import uproot
    from uproot.behaviors.RNTuple import HasFields

    from hepml_coffea.data import io as hio

    patched = HasFields.__dict__["fields"]
    if upstream and hio._UPSTREAM_FIELDS is not None:
        HasFields.fields = hio._UPSTREAM_FIELDS
    try:
        t0 = time.perf_counter()
        with uproot.open(path) as f:
            f["Events"].keys()
        return time.perf_counter() - t0
    finally:
        HasFields.fields = patched


def _compare(label: str, tt: Any, rn: Any, n: int, taggers: list[str]) -> dict[str, Any]:
    from hepml_coffea.config import RunConfig
    from hepml_coffea.analysis.processor import TaggerProcessor
    from hepml_coffea.batch.run import run_fileset
    from hepml_coffea.analysis.summary import constituent_summary

    out: dict[str, Any] = {"source": label, "events": n}
    out["list_fields_s"] = {"rntuple_uproot_lookup": _listing(str(rn), True), "rntuple_indexed": _listing(str(rn), False),
                            "ttree": _listing(str(tt), False)}
    summ = {}
    for kind, path in (("ttree", tt), ("rntuple", rn)):
        t0 = time.perf_counter()
        constituent_summary(path)
        summ[kind] = time.perf_counter() - t0
    out["summary_s"] = summ
    proc: dict[str, float] = {}
    for kind, path in (("ttree", tt), ("rntuple", rn), ("ttree", tt), ("rntuple", rn)):  # best of two, interleaved
        cfg = RunConfig(executor="iterative", chunksize=max(n, 1), status=False)
        with contextlib.redirect_stdout(io.StringIO()):
            t0 = time.perf_counter()
            run_fileset({"mixed": [str(path)]}, TaggerProcessor(taggers=taggers, device="cpu"), config=cfg)
            dt = time.perf_counter() - t0
        proc[kind] = min(proc.get(kind, float("inf")), dt)
    out["processor_s"] = proc
    log(f"  {label}: list fields {out['list_fields_s']}, summary {summ}, processor {proc}")
    return out


def run(ctx: Context) -> dict[str, Any]:
    import uproot
    from _common import ROOT, n_entries

    set_threads(1)
    taggers = list(ctx.taggers.values())
    n = 200 if ctx.quick else 1000
    tt = ctx.work / "mixed_ttree.root"
    rn = ctx.work / "mixed_rntuple.root"
    src = [(ctx.files["ttbar"], 0, n // 2), (ctx.files["qcd"], 0, n // 2)]
    write_events(src, tt)
    write_events(src, rn, rntuple=True)
    rows = [_compare("generated ttbar + QCD (uncompressed TTree vs RNTuple)", tt, rn, n, taggers)]
    sample = ROOT / "tests" / "samples" / "pfnano.root"
    rn2 = ctx.work / "pfnano_rntuple.root"
    with uproot.open(sample) as f:
        arrays = f["Events"].arrays(how=dict)
    with uproot.recreate(rn2) as f:
        f["Events"] = arrays
    rows.append(_compare(f"tests/samples/pfnano.root ({len(arrays)} branches) vs its RNTuple copy", sample, rn2,
                         n_entries([sample]), taggers))
    worst = max(r["processor_s"]["rntuple"] / r["processor_s"]["ttree"] for r in rows)
    return {"rows": rows, "targets": {"rntuple_vs_ttree_processing": {
        "value": worst, "target": TARGETS["rntuple_vs_ttree"], "met": worst <= TARGETS["rntuple_vs_ttree"]}}}


def markdown(res: dict[str, Any]) -> list[str]:
    out = ["| input | step | TTree s | RNTuple s | RNTuple / TTree |", "|---|---|---|---|---|"]
    for r in res["rows"]:
        lf, s, p = r["list_fields_s"], r["summary_s"], r["processor_s"]
        src = f"{r['source']}, {r['events']} events"
        out += [
            f"| {src} | list fields, uproot's own lookup | {fmt(lf['ttree'], 2)} | {fmt(lf['rntuple_uproot_lookup'], 2)} | "
            f"{lf['rntuple_uproot_lookup'] / lf['ttree']:.1f} |",
            f"| | list fields, hepml_coffea.data.io index | {fmt(lf['ttree'], 2)} | {fmt(lf['rntuple_indexed'], 2)} | "
            f"{lf['rntuple_indexed'] / lf['ttree']:.1f} |",
            f"| | constituent summary | {fmt(s['ttree'], 2)} | {fmt(s['rntuple'], 2)} | {s['rntuple'] / s['ttree']:.2f} |",
            f"| | processor, all taggers (iterative) | {fmt(p['ttree'], 2)} | {fmt(p['rntuple'], 2)} | "
            f"{p['rntuple'] / p['ttree']:.2f} |"]
    return out


if __name__ == "__main__":
    from _common import standalone

    standalone(run, markdown)
