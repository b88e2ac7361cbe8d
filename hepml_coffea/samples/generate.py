"""Generate top (ttbar, hadronic W) and QCD jets with Pythia8 + FastJet.

The pipeline per batch of events:

1. Pythia8 at sqrt(s) = 14 TeV (``pythia8mc``), ``PhaseSpace:pTHatMin`` ~ 500 GeV;
   signal ``Top:gg2ttbar`` + ``Top:qqbar2ttbar`` with ``24:onMode`` hadronic, background
   ``HardQCD:all``.
2. Final-state visible particles (no neutrinos) with |eta| < ``eta_max``, optionally
   passed through :func:`hepml_coffea.samples.detector.apply_detector_response`.
3. anti-kT R=0.8 jets with FastJet's vectorised (awkward) interface, pT > ``jet_pt_min``,
   sorted by pT; soft-drop mass (beta=0, z_cut=0.1, C/A reclustering) and N-subjettiness
   tau1..tau3 (beta=1, one-pass kT axes, normalised) from FastJet contrib.
4. Arrays in NanoAOD/PFNano layout (see :mod:`hepml_coffea.samples.write`).

Generation is deterministic for a given (process, n_events, seed, workers).
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import awkward as ak
import numpy as np

from hepml_coffea.samples.detector import apply_detector_response

__all__ = ["GenerationConfig", "generate", "generate_arrays"]

Process = Literal["ttbar", "qcd"]

logger = logging.getLogger(__name__)
_FASTJET_QUIET = False

# NanoAOD GenPart statusFlags bits
_IS_PROMPT = 1 << 0
_IS_HARD = 1 << 7
_FROM_HARD = 1 << 8
_FIRST_COPY = 1 << 12
_LAST_COPY = 1 << 13


@dataclass(frozen=True)
class GenerationConfig:
    """Everything that defines a generated sample (recorded in the output file)."""

    process: Process
    n_events: int
    seed: int = 1
    pthat_min: float = 500.0
    ecm: float = 14000.0
    eta_max: float = 2.5
    detector: bool = True
    jet_r: float = 0.8
    jet_pt_min: float = 200.0
    batch_size: int = 500

    def __post_init__(self) -> None:
        if self.process not in ("ttbar", "qcd"):
            msg = f"unknown process {self.process!r}: choose 'ttbar' or 'qcd'"
            raise ValueError(msg)
        if self.n_events < 0:
            msg = f"n_events must be >= 0, got {self.n_events}"
            raise ValueError(msg)
        if not 1 <= self.seed <= 900_000_000:
            msg = f"seed must be in [1, 900000000] (Pythia's range), got {self.seed}"
            raise ValueError(msg)


def _make_pythia(config: GenerationConfig, seed: int) -> Any:
    import pythia8mc

    py = pythia8mc.Pythia("", False)
    settings = [
        f"Beams:eCM = {config.ecm}",
        f"PhaseSpace:pTHatMin = {config.pthat_min}",
        "Random:setSeed = on",
        f"Random:seed = {seed}",
        "Print:quiet = on",
        "Next:numberCount = 0",
        "Next:numberShowEvent = 0",
        "Next:numberShowInfo = 0",
        "Next:numberShowProcess = 0",
        "Init:showChangedSettings = off",
        "Init:showProcesses = off",
        "Init:showChangedParticleData = off",
    ]
    if config.process == "ttbar":
        settings += [
            "Top:gg2ttbar = on",
            "Top:qqbar2ttbar = on",
            "24:onMode = off",
            "24:onIfAny = 1 2 3 4 5",
        ]
    else:
        settings += ["HardQCD:all = on"]
    for s in settings:
        if not py.readString(s):
            msg = f"Pythia rejected setting {s!r}"
            raise RuntimeError(msg)
    if not py.init():
        msg = "Pythia initialisation failed"
        raise RuntimeError(msg)
    return py


def _genparts(ev: Any, process: Process) -> list[tuple[float, float, float, float, int, int, int, int]]:
    """Hard-process record in NanoAOD style: (pt, eta, phi, m, pdgId, status, flags, mother)."""
    out: list[tuple[float, float, float, float, int, int, int, int]] = []

    def add(i: int, flags: int, mother: int) -> int:
        p = ev[i]
        out.append((p.pT(), p.eta(), p.phi(), p.m(), p.id(), abs(p.status()), flags, mother))
        return len(out) - 1

    hard = [i for i in range(ev.size()) if ev[i].status() in (-22, -23)]
    for i in hard:
        p = ev[i]
        if process == "ttbar" and abs(p.id()) == 6:
            first = add(i, _IS_PROMPT | _IS_HARD | _FROM_HARD | _FIRST_COPY, -1)
            last_i = p.iBotCopyId()
            last = add(last_i, _IS_PROMPT | _FROM_HARD | _LAST_COPY, first)
            for d in ev[last_i].daughterList():
                dp = ev[d]
                if abs(dp.id()) == 5:
                    add(d, _IS_PROMPT | _IS_HARD | _FROM_HARD | _FIRST_COPY, last)
                elif abs(dp.id()) == 24:
                    w_first = add(d, _IS_PROMPT | _IS_HARD | _FROM_HARD | _FIRST_COPY, last)
                    w_last_i = dp.iBotCopyId()
                    w_last = add(w_last_i, _IS_PROMPT | _FROM_HARD | _LAST_COPY, w_first)
                    for q in ev[w_last_i].daughterList():
                        add(q, _IS_PROMPT | _IS_HARD | _FROM_HARD | _FIRST_COPY, w_last)
        elif process == "qcd" and p.status() == -23:
            add(i, _IS_PROMPT | _IS_HARD | _FROM_HARD | _FIRST_COPY, -1)
    return out


def _quiet_fastjet() -> None:
    """Keep FastJet's 13-line banner out of stdout (called before every clustering; acts once).

    FastJet prints its banner on the first ``ClusterSequence`` of a process (every worker
    process of a pool or a Dask cluster). Its own API silences it: with a null banner
    stream, ``print_banner()`` marks the banner as shown without printing it; the stream is
    then restored. The citation request goes to this module's logger once per process
    instead. If this fastjet lacks the API, FastJet prints its banner (once per process).
    """
    global _FASTJET_QUIET
    if _FASTJET_QUIET:
        return
    _FASTJET_QUIET = True
    try:
        from fastjet._swig import ClusterSequence

        stream = ClusterSequence.fastjet_banner_stream()
        ClusterSequence.set_fastjet_banner_stream(None)
        ClusterSequence.print_banner()
        ClusterSequence.set_fastjet_banner_stream(stream)
    except (ImportError, AttributeError, TypeError):  # pragma: no cover - other fastjet builds
        return
    logger.info("jets clustered with FastJet (Cacciari, Salam, Soyez): please cite EPJC72(2012)1896 "
                "[arXiv:1111.6097] if you use these samples for scientific work")


def _take(values: ak.Array, index: ak.Array) -> ak.Array:
    """``values[event][index[event][jet]]`` for an event x jet x constituent index."""
    counts = ak.flatten(ak.num(index, axis=2), axis=None)
    taken = values[ak.flatten(index, axis=2)]
    return ak.unflatten(taken, counts, axis=1)


def _cluster(particles: ak.Array, config: GenerationConfig) -> dict[str, ak.Array]:
    """Cluster anti-kT jets per event; return jets (pT-sorted) and constituent indices."""
    import fastjet

    _quiet_fastjet()
    jetdef = fastjet.JetDefinition(fastjet.antikt_algorithm, config.jet_r)
    cs = fastjet.ClusterSequence(particles[["px", "py", "pz", "E"]], jetdef)
    jets = cs.inclusive_jets(min_pt=config.jet_pt_min)
    cidx = cs.constituent_index(min_pt=config.jet_pt_min)
    jpt = np.hypot(jets.px, jets.py)
    order = ak.argsort(jpt, axis=1, ascending=False)
    jets = jets[order]
    cidx = cidx[order]
    # constituents inside each jet sorted by pT (descending)
    cpt = _take(particles.pt, cidx)
    corder = ak.argsort(cpt, axis=2, ascending=False)
    cidx = cidx[corder]
    return {"jets": jets, "cidx": cidx}


def _substructure(constituents: ak.Array, config: GenerationConfig) -> dict[str, np.ndarray]:
    """Soft-drop mass and tau1..tau3 for a flat list of jets (each a list of particles)."""
    import fastjet

    _quiet_fastjet()
    n = len(constituents)
    out = {k: np.zeros(n, dtype=np.float64) for k in ("msoftdrop", "tau1", "tau2", "tau3")}
    if n == 0:
        return out
    ncon = ak.to_numpy(ak.num(constituents, axis=1))
    ok = ncon >= 1
    if not np.any(ok):
        return out
    sel = constituents[ok][["px", "py", "pz", "E"]]
    ca = fastjet.JetDefinition(fastjet.cambridge_algorithm, config.jet_r)
    cs = fastjet.ClusterSequence(sel, ca)
    sd = cs.exclusive_jets_softdrop_grooming(njets=1, beta=0.0, symmetry_cut=0.1, R0=config.jet_r)
    out["msoftdrop"][ok] = np.nan_to_num(ak.to_numpy(sd.msoftdrop))
    # tau_N needs at least N particles; fewer -> tau_N = 0 (as in NanoAOD)
    tau = np.zeros((int(ok.sum()), 3))
    enough = ncon[ok] >= 3
    if np.any(enough):
        cs3 = fastjet.ClusterSequence(sel[enough], fastjet.JetDefinition(fastjet.kt_algorithm, config.jet_r))
        tau[enough] = ak.to_numpy(cs3.njettiness(njets=[1, 2, 3], R0=config.jet_r, beta=1.0))
    for j, key in enumerate(("tau1", "tau2", "tau3")):
        out[key][ok] = np.nan_to_num(tau[:, j])
    return out


def _process_batch(
    raw: list[np.ndarray], gens: list[list[tuple[Any, ...]]], config: GenerationConfig, rng: np.random.Generator
) -> dict[str, ak.Array]:
    counts = np.array([len(r) for r in raw], dtype=np.int64)
    flat = np.concatenate(raw) if raw else np.zeros((0, 6))
    px, py, pz, e, pdg, charge = (flat[:, k] for k in range(6))
    pt = np.hypot(px, py)
    eta = np.arcsinh(np.divide(pz, pt, out=np.zeros_like(pz), where=pt > 0))
    phi = np.arctan2(py, px)
    mass = np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0.0))
    # the neutral-hadron/photon masses Pythia gives are kept; tiny negatives -> 0
    keep = (np.abs(eta) < config.eta_max) & (pt > 0)
    if config.detector:
        keep &= apply_detector_response(pt, eta, phi, mass, charge, pdg, rng)
    event_of = np.repeat(np.arange(len(counts)), counts)
    counts = np.bincount(event_of[keep], minlength=len(counts))
    pt, eta, phi, mass, pdg, charge = pt[keep], eta[keep], phi[keep], mass[keep], pdg[keep], charge[keep]
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    e = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
    particles = ak.unflatten(
        ak.zip({"px": px, "py": py, "pz": pz, "E": e, "pt": pt, "eta": eta, "phi": phi,
                "mass": mass, "pdgId": pdg.astype(np.int32), "charge": charge.astype(np.int32)}),
        counts,
    )
    clustered = _cluster(particles, config)
    jets, cidx = clustered["jets"], clustered["cidx"]

    # jet four-vectors from their (possibly smeared) constituents
    jpx, jpy, jpz, je = jets.px, jets.py, jets.pz, jets.E
    jpt = np.sqrt(jpx**2 + jpy**2)
    jp = np.sqrt(jpt**2 + jpz**2)
    jeta = np.arcsinh(jpz / jpt)
    jphi = np.arctan2(jpy, jpx)
    jmass = np.sqrt(np.maximum(je**2 - jp**2, 0.0))
    ncon = ak.num(cidx, axis=2)

    # constituents of every jet, flat over jets, for substructure
    cons = _take(particles, cidx)
    flat_cons = ak.flatten(cons, axis=1)
    sub = _substructure(flat_cons, config)
    njet = ak.num(jets, axis=1)
    sub = {k: ak.unflatten(v, njet) for k, v in sub.items()}

    # PFCands: the constituents of the stored jets, ordered by pT within the event;
    # FatJetPFCands: one row per (jet, constituent), grouped by jet in jet order
    flat_idx = ak.flatten(cidx, axis=2)  # event -> constituent particle indices (jet order)
    jet_of_row = ak.flatten(ak.broadcast_arrays(ak.local_index(cidx, axis=1), cidx)[0], axis=2)
    cand_pt = particles.pt[flat_idx]
    cand_order = ak.argsort(cand_pt, axis=1, ascending=False)
    pfcands = particles[flat_idx][cand_order]
    # position of each association row's particle inside the sorted PFCands list
    inverse = ak.argsort(cand_order, axis=1)

    gen_counts = np.array([len(g) for g in gens], dtype=np.int64)
    gen_flat = np.array([row for g in gens for row in g], dtype=np.float64).reshape(-1, 8)
    genpart = ak.unflatten(
        ak.zip({
            "pt": gen_flat[:, 0].astype(np.float32),
            "eta": gen_flat[:, 1].astype(np.float32),
            "phi": gen_flat[:, 2].astype(np.float32),
            "mass": gen_flat[:, 3].astype(np.float32),
            "pdgId": gen_flat[:, 4].astype(np.int32),
            "status": gen_flat[:, 5].astype(np.int32),
            "statusFlags": gen_flat[:, 6].astype(np.int32),
            "genPartIdxMother": gen_flat[:, 7].astype(np.int32),
        }),
        gen_counts,
    )
    f32 = np.float32
    return {
        "FatJet": ak.zip({
            "pt": ak.values_astype(jpt, f32),
            "eta": ak.values_astype(jeta, f32),
            "phi": ak.values_astype(jphi, f32),
            "mass": ak.values_astype(jmass, f32),
            "msoftdrop": ak.values_astype(sub["msoftdrop"], f32),
            "tau1": ak.values_astype(sub["tau1"], f32),
            "tau2": ak.values_astype(sub["tau2"], f32),
            "tau3": ak.values_astype(sub["tau3"], f32),
            "nConstituents": ak.values_astype(ncon, np.int32),
        }),
        "PFCands": ak.zip({
            "pt": ak.values_astype(pfcands.pt, f32),
            "eta": ak.values_astype(pfcands.eta, f32),
            "phi": ak.values_astype(pfcands.phi, f32),
            "mass": ak.values_astype(pfcands.mass, f32),
            "charge": ak.values_astype(pfcands.charge, np.int32),
            "pdgId": ak.values_astype(pfcands.pdgId, np.int32),
        }),
        "FatJetPFCands": ak.zip({
            "jetIdx": ak.values_astype(jet_of_row, np.int32),
            "pFCandsIdx": ak.values_astype(inverse, np.int32),
        }),
        "GenPart": genpart,
    }


def _generate_chunk(config: GenerationConfig, seed: int, n_events: int, first_event: int) -> dict[str, Any]:
    """Generate ``n_events`` with Pythia seed ``seed``; event numbers start at ``first_event``."""
    py = _make_pythia(config, seed)
    rng = np.random.default_rng(seed)
    pieces: list[dict[str, ak.Array]] = []
    raw: list[np.ndarray] = []
    gens: list[list[tuple[Any, ...]]] = []
    n_fail = 0
    while len(raw) + sum(len(p["FatJet"]) for p in pieces) < n_events:
        if not py.next():
            n_fail += 1
            if n_fail > 100 + n_events // 10:
                msg = "Pythia failed to generate events too often"
                raise RuntimeError(msg)
            continue
        ev = py.event
        raw.append(np.array(
            [(p.px(), p.py(), p.pz(), p.e(), p.id(), p.charge()) for p in ev if p.isFinal() and p.isVisible()],
            dtype=np.float64,
        ).reshape(-1, 6))
        gens.append(_genparts(ev, config.process))
        if len(raw) == config.batch_size:
            pieces.append(_process_batch(raw, gens, config, rng))
            raw, gens = [], []
    if raw or not pieces:
        pieces.append(_process_batch(raw, gens, config, rng))
    out: dict[str, Any] = {k: ak.concatenate([p[k] for p in pieces]) for k in pieces[0]}
    n = len(out["FatJet"])
    out["event"] = np.arange(first_event, first_event + n, dtype=np.uint64)
    out["sigma_pb"] = py.infoPython().sigmaGen() * 1e9
    return out


def generate_arrays(config: GenerationConfig, workers: int = 1) -> dict[str, Any]:
    """Generate events in memory, split over ``workers`` processes.

    Worker ``k`` uses Pythia seed ``seed * 1000 + k`` (or ``seed`` for one worker)
    and event numbers ``seed * 10**8 + offset``, so files from different seeds never
    share event numbers (the train/validation/test split relies on it).
    """
    workers = max(1, min(workers, max(config.n_events, 1)))
    sizes = [config.n_events // workers + (1 if k < config.n_events % workers else 0) for k in range(workers)]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
    seeds = [config.seed] if workers == 1 else [config.seed * 1000 + k for k in range(workers)]
    base = config.seed * 10**8
    if workers == 1:
        parts = [_generate_chunk(config, seeds[0], sizes[0], base)]
    else:
        with ProcessPoolExecutor(workers) as pool:
            futs = [pool.submit(_generate_chunk, config, s, n, base + int(o)) for s, n, o in zip(seeds, sizes, offsets)]
            parts = [f.result() for f in futs]
    keys = ("FatJet", "PFCands", "FatJetPFCands", "GenPart", "event")
    out: dict[str, Any] = {}
    for k in keys:
        vals = [p[k] for p in parts]
        out[k] = np.concatenate(vals) if k == "event" else ak.concatenate(vals)
    out["sigma_pb"] = float(np.mean([p["sigma_pb"] for p in parts]))
    out["seeds"] = seeds
    return out


def _generator_versions() -> str:
    """Versions of the generator packages actually installed (recorded in every file)."""
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for dist in ("pythia8mc", "fastjet", "hepml-coffea"):
        try:
            parts.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            parts.append(f"{dist} (not installed as a distribution)")
    return " + ".join(parts)


def generate(
    process: Process,
    n_events: int,
    seed: int,
    out: str | os.PathLike[str],
    workers: int = 1,
    **options: Any,
) -> Path:
    """Generate a PFNano-like ROOT file (TTree ``Events``) of top or QCD events.

    Parameters
    ----------
    process : "ttbar" or "qcd"
    n_events : number of events
    seed : Pythia seed (recorded in the file, with the whole configuration)
    out : output path (written to ``out + '.tmp'`` and renamed when complete)
    workers : processes to use
    options : further :class:`GenerationConfig` fields (``pthat_min``, ``detector``...)

    Returns the output path.
    """
    from hepml_coffea.samples.write import write_pfnano

    config = GenerationConfig(process=process, n_events=n_events, seed=seed, **options)
    t0 = time.perf_counter()
    arrays = generate_arrays(config, workers=workers)
    elapsed = time.perf_counter() - t0
    meta = {**asdict(config), "workers": workers, "pythia_seeds": arrays["seeds"],
            "sigma_pb": arrays["sigma_pb"], "seconds": round(elapsed, 2),
            "generator": _generator_versions()}
    return write_pfnano(arrays, out, meta)
