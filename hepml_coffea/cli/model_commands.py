"""``hepml-coffea import weaver|torchscript|onnx``, ``export weaver``, ``taggers``: models in and out."""

from __future__ import annotations

import argparse
import json
from typing import Any


def _cmd_import_weaver(args: argparse.Namespace) -> int:
    from hepml_coffea.weaver import import_weaver

    path = import_weaver(args.model, name=args.name, out=args.out, preprocess=args.preprocess,
                         data_config=args.data_config, score=args.score, branch_map=args.branch_map,
                         license_file=args.license, provenance=args.provenance)
    _describe(path)
    return 0


def _cmd_import_byo(args: argparse.Namespace) -> int:
    """``import torchscript|onnx``: seal, run once on the bundled CMS sample, summarise."""
    from pathlib import Path

    from hepml_coffea.artifacts import import_onnx, import_torchscript
    from hepml_coffea.config import ConfigurationError
    from hepml_coffea.representations import InputSpec
    from hepml_coffea.selection import TrainingDomain

    spec_path = Path(args.spec)
    if not spec_path.is_file():
        msg = f"--spec {spec_path} does not exist (the input spec YAML: kind, features, length, ...)"
        raise ConfigurationError(msg)
    spec = InputSpec.from_yaml(spec_path.read_text())
    window = (args.pt_min, args.pt_max, args.abs_eta_max)
    domain = None if all(x is None for x in window) and args.sample is None else TrainingDomain(
        pt_min=args.pt_min, pt_max=args.pt_max, abs_eta_max=args.abs_eta_max, sample=args.sample or "unknown")
    out = Path(args.out or args.name)
    importer = import_torchscript if args.format == "torchscript" else import_onnx
    importer(args.model, spec, out, name=args.name, domain=domain)
    _describe(out)
    _check_on_bundled_sample(out)
    return 0


def _check_on_bundled_sample(path: Any) -> None:
    """Score the bundled CMS PFNano sample with a freshly imported tagger; print a summary."""
    from importlib import resources

    import numpy as np

    from hepml_coffea.data.io import load_events
    from hepml_coffea.scoring import FatJetTagger

    sample = resources.files("hepml_coffea") / "data" / "cms_pfnano.root"
    tagger = FatJetTagger([str(path)], device="cpu")
    result = tagger.score(load_events(str(sample)))
    s = next(iter(result.scores.values()))
    s = s[np.isfinite(s)]
    c = result.counts
    if not len(s):
        print(f"  bundled CMS sample ({sample.name}): no jet scored ({c})")
        return
    q = np.quantile(s, [0.0, 0.5, 1.0])
    dom = next(iter(result.in_domain.values()))
    inside = "" if dom is None else f"; {int(np.sum(dom & np.isfinite(next(iter(result.scores.values())))))} inside its domain"
    print(f"  bundled CMS sample ({sample.name}): {c['scored']} of {result.n_fatjets} fat jets scored{inside}; "
          f"score min {q[0]:.4f} / median {q[1]:.4f} / max {q[2]:.4f}, mean {float(np.mean(s)):.4f}")


def _cmd_taggers(args: argparse.Namespace) -> int:
    """``taggers``: one line per shipped tagger (or the given artifacts)."""
    from hepml_coffea.artifacts import load_artifact, shipped_taggers

    names = args.taggers or list(shipped_taggers())
    rows = []
    for n in names:
        art = load_artifact(n)
        spec = art.spec
        if spec is None:
            inputs = "msoftdrop, tau32"
        elif spec.kind == "blocks":
            inputs = "; ".join(f"{b.name} {len(b.vars)}x{b.length}" for b in spec.blocks)
        elif spec.kind == "image":
            inputs = f"image {len(spec.channels)}x{spec.npix}x{spec.npix}"
        else:
            inputs = f"{spec.kind} {spec.n_features}x{spec.length}"
        params = art.metrics.get("parameters")
        if params is None and art.model is not None and hasattr(art.model, "parameters"):
            params = sum(int(p.numel()) for p in art.model.parameters())
        dom = art.domain
        rows.append((art.name, inputs, f"{params:,}" if params else "-", dom.describe() if dom else "not recorded",
                     art.cpu_backend or "torch", art.hash[:16]))
    if args.json:
        keys = ("name", "inputs", "parameters", "domain", "runtime", "hash")
        print(json.dumps([dict(zip(keys, r)) for r in rows], indent=2))
        return 0
    head = ("name", "inputs", "parameters", "training domain", "CPU runtime", "hash")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip())
    return 0


def _describe(path: Any) -> None:
    """Print what an artifact is: name, hash, inputs, classes, score, runtime."""
    from hepml_coffea.artifacts import load_artifact

    art = load_artifact(path)
    print(f"{art.name}: artifact {art.path} (hash {art.hash[:16]})")
    spec = art.spec
    if spec is not None and spec.kind == "blocks":
        for b in spec.blocks:
            print(f"  input {b.name}: {len(b.vars)} x {b.length} ({b.collection}, pad {b.pad_mode})")
    if art.classes:
        print(f"  classes: {', '.join(art.classes)}; score = {art.score_expression}")
    print(f"  runtime: {art.cpu_backend}; padding trimmed per batch: {bool(art.meta.get('trim_padding'))}")
    print(f"  use it: score_fatjets(events, [{str(art.path)!r}]) or hepml-coffea run --taggers {art.path}")


def _cmd_export_weaver(args: argparse.Namespace) -> int:
    from hepml_coffea.weaver import export_weaver

    files = export_weaver(args.tagger, args.out)
    for f in files:
        print(f)
    return 0


