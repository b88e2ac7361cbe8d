"""Export a hepml_coffea artifact the way weaver ships models: ``model.onnx`` +
``preprocess.json``, plus the branch map that reads its variables back from NanoAOD.

The ONNX graph takes weaver's input names (``pf_points``, ``pf_features``, ``pf_mask``) and
gives ``softmax`` probabilities over ``label_QCD``, ``label_Top`` (weaver's ``for_inference``
output). ``preprocess.json`` has weaver's layout (``var_length``, per variable ``median``,
``norm_factor``, ``replace_inf_value``, ``lower_bound``, ``upper_bound``, ``pad``). Variable
names are the artifact's registered feature names; expressions get the names ``<input>_v<i>``
and ``branch_map.yaml`` gives each name's expression, so::

    hepml-coffea import weaver out/model.onnx --preprocess out/preprocess.json \\
        --branch-map out/branch_map.yaml --name mine

scores as the original does (to float rounding: tested). Sequence and point-cloud taggers
(PFN, LSTM, ParticleNet) and imported ``blocks`` taggers with torch weights export; an image
tagger does not (its centring / rotation / pixelisation has no preprocess.json form), nor the
cut-based baseline.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from hepml_coffea.artifacts import ArtifactError, load_artifact
from hepml_coffea.representations import VarSpec

__all__ = ["export_weaver"]

_PREFIX = {"points": "pf_points", "features": "pf_features", "mask": "pf_mask"}


def _info(v: VarSpec) -> dict[str, float]:
    return {"median": v.center, "norm_factor": v.scale, "replace_inf_value": 0,
            "lower_bound": -1e32 if v.clip_min is None else v.clip_min,
            "upper_bound": 1e32 if v.clip_max is None else v.clip_max, "pad": v.pad_value}


def export_weaver(tagger: str | os.PathLike[str], out: str | os.PathLike[str]) -> list[Path]:
    """Write ``model.onnx``, ``preprocess.json`` and ``branch_map.yaml`` for ``tagger`` into ``out``.

    Returns
    -------
    list of Path
        the files written.

    Raises
    ------
    ArtifactError
        for a tagger whose inputs have no weaver form (image, cut-based) or no torch model.
    """
    from hepml_coffea.inference.backends import _onnx_bytes

    art = load_artifact(tagger)
    spec = art.spec
    if art.model is None or spec is None:
        msg = f"tagger {art.name!r} has no torch model to export (an imported ONNX graph is already in weaver's form)"
        raise ArtifactError(msg)
    if spec.kind not in ("sequence", "pointcloud"):
        msg = (f"tagger {art.name!r} reads a {spec.kind!r} input: only sequence and point-cloud inputs have a "
               "weaver preprocess.json form (an image's centring, rotation and pixelisation have none)")
        raise ArtifactError(msg)
    pmap: dict[str, str] = {}
    blocks: dict[str, tuple[list[str], list[dict[str, float]]]] = {}

    def name_of(block: str, i: int, feature: str) -> str:
        if feature.isidentifier():  # a registered feature: read back under its own name
            pmap[feature] = feature
            return feature
        n = f"{block}_v{i}"
        pmap[n] = feature
        return n

    if spec.kind == "pointcloud":
        pts = [name_of("pf_points", i, p) for i, p in enumerate(spec.points)]
        blocks["pf_points"] = (pts, [_info(VarSpec(p)) for p in spec.points])
    feats = [name_of("pf_features", i, f.name) for i, f in enumerate(spec.features)]
    blocks["pf_features"] = (feats, [_info(f) for f in spec.features])
    pmap["pf_mask_ones"] = "ones_like(pt)"
    blocks["pf_mask"] = (["pf_mask_ones"], [_info(VarSpec("ones_like(pt)"))])
    names = [_PREFIX[k] for k in art.input_names]
    doc: dict[str, Any] = {"output_names": ["label_QCD", "label_Top"], "input_names": names}
    for k in names:
        var_names, infos = blocks[k]
        doc[k] = {"var_names": var_names, "var_infos": dict(zip(var_names, infos)), "var_length": spec.length}
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [out_dir / "model.onnx", out_dir / "preprocess.json", out_dir / "branch_map.yaml"]
    files[0].write_bytes(_onnx_bytes(art, graph_names=names, softmax=True))
    files[1].write_text(json.dumps(doc, indent=2))
    files[2].write_text(yaml.safe_dump({
        "description": f"exported from hepml_coffea tagger {art.name} (artifact hash {art.hash}); each name is a "
                       "hepml_coffea feature (registered name or expression) over PFCands fields",
        "sort_pf_by": "cand.pt", "pf": pmap}, sort_keys=False))
    return files
