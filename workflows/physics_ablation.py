"""Ablation of the physics-aware training options, evaluated on the standard evaluation set.

    python workflows/physics_ablation.py --data data/train_big --models pfn lstm \\
        --variants plain reflect distill reflect+distill --caps 20000 --epochs 30 --out data/ablation

For each model, variant and per-class cap one training (same data, seed and schedule; only the
option differs), then every candidate is scored on the standard evaluation set
(``data/evalset``, cached per artifact hash) and compared **paired** (same jets, bootstrap
16-50-84 %) with the cut-based baseline and with the ``plain`` variant of the same model and
cap. Variants: ``plain`` (truth labels), ``reflect`` (deta/dphi sign flips: exact symmetries),
``rotate`` (reflections + rotations about the jet axis: approximate), ``distill`` (alpha 0.5,
T = 2, teacher ``--teacher``), ``mean`` / ``meanmax`` (LSTM: pool the outputs of every
particle instead of reading the final hidden state), ``embed`` (LSTM: a per-particle MLP
64-64 before it), combinations joined with ``+``. Several caps give the learning
curve (1/eB at eS = 30 % vs training jets per class).

Writes ``{out}/ablation.json`` and ``{out}/ablation.md`` (the table), logs each training.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from hepml_coffea.artifacts import update_artifact
from hepml_coffea.evaluation.dataset import load_eval_sample
from hepml_coffea.evaluation.stats import paired_rejection_ratio
from hepml_coffea.stats import rejection_at_efficiency
from hepml_coffea.training.dataset import load_dataset
from hepml_coffea.training.train import TrainConfig, train_on_dataset

log = logging.getLogger("hepml_coffea.workflows.ablation")

#: model -> (batch size, peak learning rate, max gradient norm, patience)
RECIPE = {"pfn": (256, 1e-3, 1.0, 6), "lstm": (256, 1e-3, 1.0, 5), "cnn": (256, 2e-3, 0.0, 5),
          "particlenet-lite": (128, 3e-3, 0.0, 5)}


def _cap(ds, cap: int):
    if not cap:
        return ds
    keep = np.zeros(len(ds), dtype=bool)
    for label in (0, 1):
        keep[np.flatnonzero(ds.labels == label)[:cap]] = True
    return ds.subset(keep)


def _options(variant: str) -> tuple[str, float, dict]:
    parts = set(variant.split("+"))
    unknown = parts - {"plain", "reflect", "rotate", "distill", "mean", "meanmax", "embed"}
    if unknown:
        msg = f"variant {variant!r}: unknown {sorted(unknown)}"
        raise SystemExit(msg)
    augment = "reflect+rotate" if "rotate" in parts else ("reflect" if "reflect" in parts else "none")
    pools = parts & {"mean", "meanmax"}
    options = {"pool": pools.pop()} if pools else {}
    if "embed" in parts:
        options["embed"] = [64, 64]
    return augment, 0.5 if "distill" in parts else 0.0, options


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="folder with ttbar_*.root and qcd_*.root (training seeds)")
    ap.add_argument("--models", nargs="+", default=["pfn"], choices=sorted(RECIPE))
    ap.add_argument("--variants", nargs="+", default=["plain", "reflect", "distill", "reflect+distill"])
    ap.add_argument("--caps", nargs="+", type=int, default=[0], help="jets per class (0 = all)")
    ap.add_argument("--files", type=int, default=0,
                    help="read only the first N files of each process (0 = all; memory: the whole 400k-jet "
                         "set takes ~12 GB, enough files for the largest cap is what the caps need)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--time-budget", type=float, default=0.0, help="seconds per training (0 = none)")
    ap.add_argument("--teacher", default="particlenet")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--evalset", default="data/evalset")
    ap.add_argument("--cache", default="data/eval_cache")
    ap.add_argument("--out", default="data/ablation")
    ap.add_argument("--n-boot", type=int, default=200)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(args.data)
    sig = sorted(str(p) for p in data.glob("ttbar_*.root"))[:args.files or None]
    bkg = sorted(str(p) for p in data.glob("qcd_*.root"))[:args.files or None]
    need_teacher = any("distill" in v for v in args.variants)
    t0 = time.perf_counter()
    full = load_dataset(sig, bkg, teacher=args.teacher if need_teacher else None)
    log.info("training data: %d top + %d QCD jets from %d + %d files (%.0f s, teacher %s)",
             int(full.labels.sum()), int((full.labels == 0).sum()), len(sig), len(bkg), time.perf_counter() - t0,
             full.teacher_info)
    runs = []
    for model in args.models:
        bs, lr, clip, patience = RECIPE[model]
        for cap in args.caps:
            ds = _cap(full, cap)
            n_class = int(min(ds.labels.sum(), (ds.labels == 0).sum()))
            for variant in args.variants:
                augment, distill, options = _options(variant)
                name = f"{model}-{variant.replace('+', '-')}-{n_class // 1000}k"
                path = out / name
                if not (path / "manifest.json").exists():
                    cfg = TrainConfig(model=model, epochs=args.epochs, batch_size=bs, lr=lr, clip_grad=clip,
                                      patience=patience, threads=args.threads, progress=False, plots=False,
                                      onnx=True, augment=augment, distill=distill,
                                      time_budget_s=args.time_budget, model_options=options)
                    t1 = time.perf_counter()
                    meta = {"training": {"command": "python workflows/physics_ablation.py " + " ".join(
                        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                        for k, v in vars(args).items()), "signal_files": [Path(f).name for f in sig],
                        "background_files": [Path(f).name for f in bkg]}}
                    train_on_dataset(ds, path, cfg, meta)
                    update_artifact(path, meta={"name": name})
                    log.info("%s trained in %.0f s", name, time.perf_counter() - t1)
                runs.append({"model": model, "variant": variant, "cap": cap, "jets_per_class": n_class,
                             "name": name, "path": str(path)})
    _evaluate(runs, args, out)


def _evaluate(runs: list[dict], args: argparse.Namespace, out: Path) -> None:
    folder = Path(args.evalset)
    sig = sorted(str(p) for p in folder.glob("ttbar_*.root"))
    bkg = sorted(str(p) for p in folder.glob("qcd_*.root"))
    names = ["baseline", *[r["path"] for r in runs]]
    sample = load_eval_sample(sig, bkg, names, cache=args.cache or None, log=None)
    use, labels = sample.labels("contained")
    base = sample.scores["baseline"][use]
    rows = []
    for r in runs:
        s = sample.scores[r["path"]][use]
        rej = {e: rejection_at_efficiency(labels, s, e) for e in (0.3, 0.5)}
        vs_base = paired_rejection_ratio(labels, base, s, n_boot=args.n_boot)
        plain = next((p for p in runs if p["model"] == r["model"] and p["cap"] == r["cap"]
                      and p["variant"] == "plain"), None)
        vs_plain = None
        if plain is not None and plain is not r:
            vs_plain = paired_rejection_ratio(labels, sample.scores[plain["path"]][use], s, n_boot=args.n_boot)
        rows.append({**r, "rejection": {f"eS{int(e * 100)}": v for e, v in rej.items()},
                     "vs_baseline": vs_base, "vs_plain": vs_plain})
    (out / "ablation.json").write_text(json.dumps(rows, indent=1, default=float))

    def cell(x):
        return f"{x[1]:.2f} [{x[0]:.2f}, {x[2]:.2f}]"

    lines = [f"Standard evaluation set: {int(labels.sum()):,} contained top jets, {int((labels == 0).sum()):,} QCD "
             f"jets; ratios paired (bootstrap {args.n_boot} replicas, 16-50-84 %).", "",
             "| model | training | jets/class | 1/eB @ eS=30% | x baseline @ 30% | x baseline @ 50% | x plain @ 30% |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        rj = r["rejection"]["eS30"]
        lines.append(f"| {r['model']} | {r['variant']} | {r['jets_per_class']:,} | {rj['rejection']:.0f} "
                     f"[{rj['rejection_low']:.0f}, {rj['rejection_high']:.0f}] | {cell(r['vs_baseline']['eS30'])} | "
                     f"{cell(r['vs_baseline']['eS50'])} | {cell(r['vs_plain']['eS30']) if r['vs_plain'] else '-'} |")
    (out / "ablation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
