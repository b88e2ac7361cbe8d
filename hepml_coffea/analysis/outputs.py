"""Run outputs: the stage report, the non-finite-input summary and atomic saving (``coffea.util.save``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hepml_coffea.analysis.histograms import datasets_of

__all__ = ["nonfinite_summary", "stage_report", "save_output"]


def stage_report(output: Mapping[str, Any], wall: float | None = None) -> str:
    """Per-stage time and jets/s summed over datasets (a text table)."""
    timing: dict[str, float] = {}
    jets = 0
    events = 0
    for ds in datasets_of(output).values():
        if "timing" not in ds:
            continue
        for k, v in ds["timing"].items():
            timing[k] = timing.get(k, 0.0) + float(v)
        jets += int(ds["cutflow"]["scored"])
        events += int(ds["cutflow"]["events"])
    lines = [f"{'stage':<22}{'seconds':>10}{'jets/s':>14}"]
    for k, v in timing.items():
        lines.append(f"{k:<22}{v:>10.2f}{(jets / v if v > 0 else float('nan')):>14.0f}")
    total = sum(timing.values())
    lines.append(f"{'total (worker time)':<22}{total:>10.2f}{(jets / total if total > 0 else float('nan')):>14.0f}")
    if wall:
        lines.append(f"wall time {wall:.1f} s: {events / wall:.0f} events/s, {jets / wall:.0f} scored jets/s")
    return "\n".join(lines)


def nonfinite_summary(datasets: Mapping[str, Any]) -> dict[str, Any]:
    """Jets not scored because a model input was NaN / inf, over every dataset and chunk:
    ``{"jets": total, "chunks": chunks with such jets, "features": {"<tagger>: <feature>": jets}}``."""
    total, chunks, features = 0, 0, {}
    for ds in datasets.values():
        for rec in ds.get("nonfinite_inputs", []) if isinstance(ds, Mapping) else []:
            total += int(rec.get("jets", 0))
            chunks += 1
            for k, v in rec.get("features", {}).items():
                features[k] = features.get(k, 0) + int(v)
    return {"jets": total, "chunks": chunks, "features": dict(sorted(features.items(), key=lambda kv: -kv[1]))}


def save_output(output: Any, out: str | os.PathLike[str]) -> Path:
    """``coffea.util.save`` under a temporary name, then rename: never a partial file."""
    from coffea.util import save

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        save(output, tmp)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out
