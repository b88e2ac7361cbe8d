"""Benchmark of hepml_coffea.representations against coffea's documented recipe.

Usage::

    python benchmarks/bench_representations.py [--n-jets 20000] [--repeats 5]
        [--file FILE.root] [--out benchmarks/results]

Single-threaded (numba / torch / BLAS pinned to one thread).  Times
``build_sequence``, ``build_pointcloud``, ``build_image`` and the coffea ml_tools
recipe (``ak.fill_none(ak.pad_none(x, P, clip=True), 0)`` per feature, then
``ak.concatenate([x[:, np.newaxis, :] ...], axis=1)``) on the same jets, reports
best-of-N jets/s, ratio to the recipe, and max |ours - recipe|.
Writes ``representations.json`` and ``representations.md``.
"""

from __future__ import annotations

import os

for _v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import awkward as ak  # noqa: E402
import numba  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import hepml_coffea.representations as R  # noqa: E402


# ---------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------
def synthetic_jets(n_jets: int = 20000, mean_n: float = 55.0, seed: int = 1234):
    """Top-like jets: Poisson(mean_n) constituents, pt fractions from a
    Dirichlet, angles ~ N(0, 0.2 / sqrt(1 + 20 z)) around the axis, float32."""
    rng = np.random.default_rng(seed)
    counts = np.maximum(rng.poisson(mean_n, n_jets), 1).astype(np.int64)
    total = int(counts.sum())
    jet_pt = rng.uniform(400, 800, n_jets)
    jet_eta = rng.uniform(-2.0, 2.0, n_jets)
    jet_phi = rng.uniform(-np.pi, np.pi, n_jets)
    jet_mass = rng.normal(172.5, 15.0, n_jets).clip(20)
    jet_idx = np.repeat(np.arange(n_jets), counts)
    g = rng.gamma(0.6, 1.0, total) + 0.005  # no vanishing pt (real PF cands have pt > ~0.1 GeV)
    sums = np.bincount(jet_idx, g, minlength=n_jets)
    z = g / sums[jet_idx]
    # sort within jets by decreasing z (as NanoAOD does)
    order = np.lexsort((-z, jet_idx))
    z = z[order]
    pt = z * jet_pt[jet_idx]
    sigma = 0.2 / np.sqrt(1.0 + 20.0 * z)
    eta = jet_eta[jet_idx] + rng.normal(0, 1, total) * sigma
    phi = jet_phi[jet_idx] + rng.normal(0, 1, total) * sigma
    phi = np.mod(phi + np.pi, 2 * np.pi) - np.pi
    kind = rng.choice(5, total, p=[0.55, 0.02, 0.01, 0.30, 0.12])
    pdg = np.array([211, 11, 13, 22, 130])[kind] * np.where(rng.random(total) < 0.5, 1, -1)
    charge = np.where(kind < 3, np.sign(pdg), 0)
    charge = np.where(np.abs(pdg) == 22, 0, charge)
    mass = np.where(kind == 0, 0.1396, np.where(kind == 4, 0.4976, 0.0))
    energy = np.sqrt((pt * np.cosh(eta)) ** 2 + mass**2)
    f32 = np.float32
    cands = ak.unflatten(
        ak.zip(
            {
                "pt": pt.astype(f32), "eta": eta.astype(f32), "phi": phi.astype(f32),
                "mass": mass.astype(f32), "energy": energy.astype(f32),
                "charge": charge.astype(np.int32), "pdgId": pdg.astype(np.int32),
            }
        ),
        counts,
    )
    jet_energy = np.sqrt((jet_pt * np.cosh(jet_eta)) ** 2 + jet_mass**2)
    jets = ak.zip(
        {
            "pt": jet_pt.astype(f32), "eta": jet_eta.astype(f32), "phi": jet_phi.astype(f32),
            "mass": jet_mass.astype(f32), "energy": jet_energy.astype(f32),
        }
    )
    return cands, jets


def file_jets(path: str):
    """Fat jets + PF candidates from a PFNano file (FatJetPFCands association)."""
    import uproot

    t = uproot.open(path)["Events"]
    a = t.arrays(
        [
            "FatJet_pt", "FatJet_eta", "FatJet_phi", "FatJet_mass",
            "FatJetPFCands_jetIdx", "FatJetPFCands_pFCandsIdx",
            "PFCands_pt", "PFCands_eta", "PFCands_phi", "PFCands_mass",
            "PFCands_charge", "PFCands_pdgId",
        ]
    )
    return group_pfnano(a)


def group_pfnano(a):
    """Group PFCands per fat jet via FatJetPFCands rows; flat (jets, cands)."""
    fields = ["pt", "eta", "phi", "mass", "charge", "pdgId"]
    pf = ak.zip({f: a[f"PFCands_{f}"] for f in fields})
    cand = pf[a["FatJetPFCands_pFCandsIdx"]]  # per event, one per association row
    jidx = a["FatJetPFCands_jetIdx"]
    njet = ak.num(a["FatJet_pt"])
    # global jet index of each association row, then stable sort rows by it
    jet_offset = np.concatenate([[0], np.cumsum(ak.to_numpy(njet))[:-1]])
    gj = ak.to_numpy(ak.flatten(jidx + ak.Array(jet_offset.astype(np.int64)))).astype(np.int64)
    flat = ak.flatten(cand)
    order = np.argsort(gj, kind="stable")
    n_jets = int(ak.sum(njet))
    counts = np.bincount(gj, minlength=n_jets)
    cands = ak.unflatten(flat[order], counts)
    cands = cands[ak.argsort(cands.pt, axis=1, ascending=False)]
    energy = np.sqrt((cands.pt * np.cosh(cands.eta)) ** 2 + cands.mass**2)
    cands = ak.with_field(cands, energy, "energy")
    jets = ak.zip({f: ak.flatten(a[f"FatJet_{f}"]) for f in ["pt", "eta", "phi", "mass"]})
    jets = ak.with_field(jets, np.sqrt((jets.pt * np.cosh(jets.eta)) ** 2 + jets.mass**2), "energy")
    return cands, jets


# ---------------------------------------------------------------------------
# the coffea recipe
# ---------------------------------------------------------------------------
def coffea_recipe(cands: ak.Array, jets: ak.Array, P: int = 100) -> np.ndarray:
    """The documented coffea ml_tools recipe for the 7 ParticleNet features."""
    deta = cands.eta - jets.eta
    dphi = np.mod(cands.phi - jets.phi + np.pi, 2 * np.pi) - np.pi
    feats = [
        deta,
        dphi,
        np.log(cands.pt),
        np.log(cands.energy),
        np.log(cands.pt / jets.pt),
        np.log(cands.energy / jets.energy),
        np.sqrt(deta**2 + dphi**2),
    ]
    feats = [ak.to_numpy(ak.fill_none(ak.pad_none(x, P, clip=True), 0)) for x in feats]
    return ak.to_numpy(ak.concatenate([x[:, np.newaxis, :] for x in feats], axis=1))


# ---------------------------------------------------------------------------
def _best(fn, repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-jets", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--file", default=None, help="PFNano ROOT file instead of synthetic jets")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = ap.parse_args(argv)

    if args.file:
        cands, jets = file_jets(args.file)
        source = args.file
    else:
        cands, jets = synthetic_jets(args.n_jets)
        source = f"synthetic (seed 1234, Poisson(55) constituents, n_jets={args.n_jets})"
    n = len(jets)
    mean_n = float(ak.mean(ak.num(cands))) if n else 0.0

    seq_spec = R.default_sequence_spec(100)
    pc_spec = R.default_pointcloud_spec(100)
    img_spec = R.default_image_spec()

    # warm-up (numba compile / caches)
    small_c, small_j = cands[:100], jets[:100]
    for _ in range(2):
        R.build_sequence(small_c, small_j, seq_spec)
        R.build_pointcloud(small_c, small_j, pc_spec)
        R.build_image(small_c, small_j, img_spec)
        coffea_recipe(small_c, small_j)

    ours = R.build_sequence(cands, jets, seq_spec)["features"]
    ref = coffea_recipe(cands, jets)
    max_diff = float(np.max(np.abs(ours - ref))) if ours.size else 0.0
    finite = bool(np.isfinite(ours).all())

    timings = {
        "coffea_recipe": _best(lambda: coffea_recipe(cands, jets), max(2, args.repeats // 2)),
        "sequence": _best(lambda: R.build_sequence(cands, jets, seq_spec), args.repeats),
        "pointcloud": _best(lambda: R.build_pointcloud(cands, jets, pc_spec), args.repeats),
        "image": _best(lambda: R.build_image(cands, jets, img_spec), args.repeats),
    }
    base = n / timings["coffea_recipe"]
    rows = []
    for name, t in timings.items():
        rate = n / t
        rows.append({"method": name, "seconds": t, "jets_per_s": rate, "ratio_vs_recipe": rate / base})

    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_model": _cpu_model(),
            "threads": 1,
        },
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "awkward": ak.__version__,
            "numba": numba.__version__,
            "torch": torch.__version__,
        },
        "input": {"source": source, "n_jets": n, "mean_constituents": mean_n, "P": 100, "n_features": 7,
                  "image": "40x40, R=0.8, centre+rotate+flip, channel pt"},
        "repeats": args.repeats,
        "results": rows,
        "check": {"max_abs_diff_sequence_vs_recipe": max_diff, "all_finite": finite},
    }

    lines = [
        "# representations benchmark",
        "",
        f"{result['date']}, {result['machine']['cpu_model']}, 1 thread; {source}; "
        f"mean {mean_n:.1f} constituents/jet, P=100, 7 features; best of {args.repeats}.",
        "",
        "| method | time [s] | jets/s | vs coffea recipe |",
        "| --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(f"| {r['method']} | {r['seconds']:.4f} | {r['jets_per_s']:,.0f} | {r['ratio_vs_recipe']:.1f}x |")
    lines += [
        "",
        f"max |sequence - recipe| = {max_diff:.3g} (all finite: {finite})",
        "",
        "versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()),
        "",
    ]
    md = "\n".join(lines)
    print(md)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "representations.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "representations.md").write_text(md)
    return result


if __name__ == "__main__":
    main()
