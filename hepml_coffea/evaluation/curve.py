"""Learning curves on the standard evaluation set: 1/eB vs the number of training jets.

Each point is one tagger artifact trained from scratch on a given number of jets
(``metrics.json``: ``n_train``, the jets of its training split, both classes) and scored on
the same evaluation jets as the table. :func:`learning_curve` groups the points by model
(``model.yaml``: ``training.config.model``) and gives, between neighbouring points, the gain
per doubling of the training set, ``(R2 / R1) ** (1 / log2(n2 / n1))`` with its error from
the two Clopper-Pearson intervals: a gain well above 1 says the tagger is data-limited.
Artifacts warm-started from another (``training.init_from``) saw more jets than their own
``n_train`` and are left out, with their name in ``skipped``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hepml_coffea.evaluation.stats import tagger_report

__all__ = ["CurvePoint", "curve_point", "learning_curve", "per_doubling", "resolve_curve_args"]

CurvePoint = dict[str, Any]


def curve_point(name: str) -> CurvePoint | None:
    """Model name, training jets and provenance of artifact ``name`` (a shipped name or a folder);
    ``None`` when it cannot be a learning-curve point (no neural training record, or warm-started).

    Raises
    ------
    ValueError : the artifact has no ``metrics.json`` ``n_train`` (not made by ``hepml-coffea train``)
    """
    import yaml

    from hepml_coffea.artifacts import resolve_artifact

    folder = resolve_artifact(name)
    meta = yaml.safe_load((folder / "model.yaml").read_text()) or {}
    training = meta.get("training") or {}
    model = (training.get("config") or {}).get("model")
    if model in (None, "baseline") or training.get("init_from"):
        return None
    metrics = json.loads((folder / "metrics.json").read_text())
    if "n_train" not in metrics:
        msg = f"{folder}: metrics.json has no n_train; a learning-curve point must come from hepml-coffea train"
        raise ValueError(msg)
    manifest = json.loads((folder / "manifest.json").read_text())
    return {"artifact": name, "model": str(model), "n_train": int(metrics["n_train"]), "hash": manifest["hash"],
            "weights_sha256": manifest.get("files", {}).get("weights.safetensors")}


def per_doubling(a: Mapping[str, Any], b: Mapping[str, Any], wp: str = "eS30") -> dict[str, float]:
    """Gain of 1/eB per doubling of the training jets from point ``a`` to point ``b``, +- error
    (relative 68 % CP half-widths of both rejections in quadrature, scaled by the exponent)."""
    doublings = float(np.log2(b["n_train"] / a["n_train"]))
    ra, rb = a["report"][wp], b["report"][wp]

    def rel(r: Mapping[str, Any]) -> float:
        hi = r["rejection_high"] if np.isfinite(r["rejection_high"]) else 2 * r["rejection"]
        return 0.5 * (hi - r["rejection_low"]) / r["rejection"]

    gain = float((rb["rejection"] / ra["rejection"]) ** (1.0 / doublings))
    return {"gain": gain, "err": gain * float(np.hypot(rel(ra), rel(rb))) / doublings, "doublings": doublings}


def learning_curve(labels: np.ndarray, scores: Mapping[str, np.ndarray], names: Sequence[str]) -> dict[str, Any]:
    """Learning-curve points of ``names`` (scores on the evaluation jets ``labels``), grouped by model.

    Shapes:
        labels: (N,) 1 = signal; scores[name]: (N,)

    Returns
    -------
    ``{"models": {model: [point, ...] sorted by n_train}, "skipped": [name, ...], "duplicates":
    {name: first name with the same weights}}`` (a renamed copy of an artifact is one point); each point has
    ``artifact``, ``n_train``, ``hash``, ``report`` (:func:`tagger_report`: AUC, 1/eB at 30 / 50 %)
    and, from the second point on, ``per_doubling`` (gain at eS = 30 % from the previous point).
    """
    models: dict[str, list[CurvePoint]] = {}
    skipped: list[str] = []
    seen: dict[str, str] = {}
    duplicates: dict[str, str] = {}
    for name in names:
        point = curve_point(name)
        if point is None:
            skipped.append(name)
            continue
        key = f"{point['weights_sha256']}:{point['n_train']}" if point["weights_sha256"] else None
        if key is not None and key in seen:
            duplicates[name] = seen[key]
            continue
        if key is not None:
            seen[key] = name
        point["report"] = tagger_report(labels, np.asarray(scores[name], dtype=np.float64))
        models.setdefault(point["model"], []).append(point)
    for points in models.values():
        points.sort(key=lambda p: p["n_train"])
        for prev, cur in zip(points, points[1:]):
            if cur["n_train"] > prev["n_train"]:
                cur["per_doubling"] = per_doubling(prev, cur)
    return {"models": dict(sorted(models.items())), "skipped": skipped, "duplicates": duplicates}


def resolve_curve_args(items: Sequence[str]) -> list[str]:
    """Artifact folders from ``--curve`` arguments: folders holding a ``manifest.json``, or folders
    of such folders (every artifact one level down, sorted)."""
    out: list[str] = []
    for item in items:
        p = Path(item)
        if (p / "manifest.json").exists():
            out.append(str(p))
        elif p.is_dir():
            found = sorted(str(q.parent) for q in p.glob("*/manifest.json"))
            if not found:
                msg = f"--curve {item}: no artifact (manifest.json) in it or one level down"
                raise FileNotFoundError(msg)
            out += found
        else:
            msg = f"--curve {item}: not an artifact folder"
            raise FileNotFoundError(msg)
    return out
