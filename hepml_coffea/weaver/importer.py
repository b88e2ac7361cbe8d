"""Import a weaver-trained model (ONNX + preprocess.json or data-config YAML) as an artifact.

:func:`import_weaver` turns weaver's files into a sealed hepml_coffea artifact that
:class:`~hepml_coffea.scoring.FatJetTagger`, :func:`~hepml_coffea.scoring.score_fatjets`, the
processor and the CLI use like any other tagger:

* every model input the ONNX Runtime session reports becomes a ``blocks`` input of the
  artifact's :class:`~hepml_coffea.representations.InputSpec` (inputs weaver lists but the graph
  lacks, such as JetClass's ``pf_vectors``, are dropped); each variable is translated into a
  feature expression (:mod:`hepml_coffea.weaver.translate`) with weaver's transform
  (centre, scale, clip after scaling, pad value, padding mode, NaN -> 0);
* a name the branch map cannot resolve is refused here, with the list of such names;
* the labels become the artifact's classes (``label_`` prefix dropped); ``score`` (an
  expression over class names, e.g. ``Tbqq / (Tbqq + QCD)``) gives the top score and its
  working points; all class probabilities stay available (``FatJetTagger(..., classes=True)``);
* before sealing, the graph runs on a dry batch of the spec's shapes: output width equal to
  the number of labels, finite, probabilities or logits (recorded); and whether trimming the
  padding changes the outputs (recorded as ``trim_padding``, which lets the engine trim);
* optionally (``weights=``) the same network as torch weights in a registry architecture,
  checked against the graph on the dry batch to ``atol``: then the torch / AOTInductor
  runtimes can run it too (how the shipped ``particlenet-jetclass`` reaches its CPU speed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hepml_coffea.artifacts import FORMAT, ONNX_ONLY, ArtifactError, seal_artifact
from hepml_coffea.representations import BlockSpec, InputSpec, VarSpec
from hepml_coffea.representations.expressions import ExpressionError, parse_expression

from .config import WeaverConfig, WeaverConfigError, read_data_config, read_preprocess_json
from .translate import BranchMap, TranslationError, Translator, load_branch_map

__all__ = ["WeaverImportError", "import_weaver", "weaver_spec"]

log = logging.getLogger("hepml_coffea.weaver")

#: largest difference allowed between trimmed and untrimmed outputs for ``trim_padding``
TRIM_ATOL = 1e-5


class WeaverImportError(ArtifactError):
    """A weaver model that cannot be imported (the message names the file, input or name)."""


def _default_map(cfg: WeaverConfig) -> str:
    names = [v.name for i in cfg.inputs for v in i.vars]
    return "cms" if any(n.startswith(("pfcand_", "sv_")) for n in names) else "jetclass"


def _strip(label: str) -> str:
    return label[len("label_"):] if label.startswith("label_") else label


def weaver_spec(
    cfg: WeaverConfig, branch_map: BranchMap, model_inputs: list[str] | None = None
) -> InputSpec:
    """The ``blocks`` :class:`InputSpec` for a weaver config (only ``model_inputs``, in that
    order, when given).

    Raises
    ------
    WeaverImportError
        a model input the config does not describe; names without a translation (all listed).
    """
    by_name = {i.name: i for i in cfg.inputs}
    order = model_inputs if model_inputs is not None else list(by_name)
    missing = [n for n in order if n not in by_name]
    if missing:
        msg = (f"the model takes input(s) {missing} that the weaver config does not describe "
               f"(it describes {list(by_name)})")
        raise WeaverImportError(msg)
    translators = {c: Translator(branch_map, cfg.new_variables, c) for c in ("pf", "sv")}
    blocks: list[BlockSpec] = []
    unmapped: dict[str, set[str]] = {}
    for name in order:
        wi = by_name[name]
        collection = "sv" if name.startswith("sv_") or all(v.name.startswith("sv_") for v in wi.vars) else "pf"
        tr = translators[collection]
        vars_: list[VarSpec] = []
        for v in wi.vars:
            try:
                expr = tr.variable(v.name)
            except TranslationError as err:
                raise WeaverImportError(str(err)) from None
            if expr is None:
                continue
            if v.center is None:
                vars_.append(VarSpec(expr, 0.0, 1.0, None, None, v.pad_value))
            else:
                vars_.append(VarSpec(expr, v.center, v.scale, v.clip_min, v.clip_max, v.pad_value))
        for t_name, t in translators.items():
            if t.unmapped:
                unmapped.setdefault(t_name, set()).update(t.unmapped)
        if len(vars_) == len(wi.vars):
            blocks.append(BlockSpec(name, collection, wi.length, wi.pad_mode, vars_, nan_to_num=True))
    if unmapped:
        parts = [f"{c}: {', '.join(sorted(n))}" for c, n in sorted(unmapped.items())]
        msg = (f"weaver names without a translation to NanoAOD/PFNano fields ({'; '.join(parts)}) with branch map "
               f"{branch_map.name!r}; add them to a --branch-map YAML (section pf or sv: name: expression)")
        raise WeaverImportError(msg)
    masks = [b.name for b in blocks if b.collection == "pf" and len(b.vars) == 1
             and b.vars[0].name.replace(" ", "").startswith("ones_like(")]
    return InputSpec(kind="blocks", features=[], blocks=blocks, mask_block=masks[0] if len(masks) == 1 else None,
                     sort_by=branch_map.sort_pf_by)


def _session(path: Path) -> Any:
    from hepml_coffea.inference.backends import onnx_session

    try:
        return onnx_session(str(path), threads=1)
    except Exception as err:  # noqa: BLE001 - ONNX Runtime raises its own classes
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        msg = f"{path}: not a loadable ONNX model ({first})"
        raise WeaverImportError(msg) from None


def _check_score(score: str, classes: tuple[str, ...]) -> str:
    text = score
    for c in sorted(classes, key=len, reverse=True):
        text = text.replace(f"label_{c}", c)
    try:
        expr = parse_expression(text)
    except ExpressionError as err:
        msg = f"--score {score!r}: {err}"
        raise WeaverImportError(msg) from None
    bad = [n for n in (*expr.cand_fields, *expr.jet_fields) if n not in classes]
    if bad or expr.jet_fields:
        msg = f"--score {score!r} names {bad or list(expr.jet_fields)}, which are not classes of the model ({list(classes)})"
        raise WeaverImportError(msg)
    return text


def _run(session: Any, names: list[str], arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    out_name = session.get_outputs()[0].name
    return np.asarray(session.run([out_name], {k: arrays[k] for k in names})[0], dtype=np.float32)


def _dry_run(session: Any, spec: InputSpec, n_classes: int,
             onnx_path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray], np.ndarray]:
    """Run the graph on a dry batch; the output kind and whether trimming is exact."""
    from hepml_coffea.inference.backends import _synthetic_blocks
    from hepml_coffea.inference.batching import padded_lengths

    names = list(spec.input_names or ())
    batch = _synthetic_blocks(spec, 64, np.random.default_rng(12345), 30.0)
    try:
        out = _run(session, names, batch)
    except Exception as err:  # noqa: BLE001
        first = str(err).strip().splitlines()[0][:300]
        msg = f"{onnx_path}: the model does not run on inputs of the config's shapes ({first})"
        raise WeaverImportError(msg) from None
    if out.ndim != 2 or out.shape != (64, n_classes):
        msg = (f"{onnx_path}: output of shape {tuple(out.shape)} for 64 jets, expected (64, {n_classes}) "
               f"(one column per label of the config)")
        raise WeaverImportError(msg)
    if not np.isfinite(out).all():
        msg = f"{onnx_path}: the model gives non-finite outputs on a dry batch"
        raise WeaverImportError(msg)
    probs = bool((out >= 0).all() and np.allclose(out.sum(axis=1), 1.0, atol=1e-4))
    rec: dict[str, Any] = {"onnx_output": {"name": session.get_outputs()[0].name,
                                           "kind": "probabilities" if probs else "logits"}}
    trim, worst = False, None
    pf_len = {b.length for b in spec.blocks if b.collection == "pf"}
    if spec.mask_block and all(b.collection == "pf" for b in spec.blocks) and len(pf_len) == 1:
        lengths = padded_lengths(batch[spec.mask_block])
        worst = 0.0
        for cut in sorted({int(lengths.max()), max(17, int(np.median(lengths)))}):
            keep = lengths <= cut
            if not keep.any():
                continue
            sub = {k: np.ascontiguousarray(v[keep][..., :cut]) for k, v in batch.items() if k in names}
            try:
                got = _run(session, names, sub)
            except Exception:  # noqa: BLE001 - a graph with a fixed length cannot be trimmed
                worst = None
                break
            worst = max(worst, float(np.abs(got - out[keep]).max()))
        trim = worst is not None and worst <= TRIM_ATOL
    rec["trim_padding"] = trim
    rec["trim_check"] = {"max_abs_diff": worst, "atol": TRIM_ATOL}
    return rec, batch, out


def _torch_weights(weights: Path, architecture: str, model_kwargs: Mapping[str, Any] | None, spec: InputSpec,
                   batch: Mapping[str, np.ndarray], onnx_out: np.ndarray, probabilities: bool,
                   atol: float) -> tuple[Any, dict[str, Any]]:
    """Load a weaver state dict into a registry architecture and check it against the graph."""
    import torch

    from hepml_coffea.models import model_from_config

    try:
        state = torch.load(str(weights), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        msg = f"{weights}: not a loadable torch state dict ({type(err).__name__}: {str(err)[:200]})"
        raise WeaverImportError(msg) from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    state = {(k[4:] if k.startswith("mod.") else k): v for k, v in state.items()}
    try:
        model = model_from_config(architecture, dict(model_kwargs or {}))
    except Exception as err:  # noqa: BLE001
        msg = f"architecture {architecture!r} with {dict(model_kwargs or {})}: {err}"
        raise WeaverImportError(msg) from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        msg = (f"{weights} does not fit {architecture} {dict(model_kwargs or {})}: missing {missing[:4]}, "
               f"unexpected {unexpected[:4]}")
        raise WeaverImportError(msg)
    model.eval()
    names = list(spec.input_names or ())
    with torch.inference_mode():
        logits = model(*[torch.from_numpy(batch[k]) for k in names]).float()
    got = torch.softmax(logits, dim=1).numpy() if probabilities else logits.numpy()
    diff = float(np.abs(got - onnx_out).max())
    if diff > atol:
        msg = (f"{weights} in {architecture} differs from the ONNX graph by {diff:.2e} on the dry batch "
               f"(allowed {atol:.0e}): not the same network")
        raise WeaverImportError(msg)
    return model, {"weights_file": weights.name, "weights_sha256": _sha(weights), "max_abs_diff_vs_onnx": diff,
                   "atol": atol}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def import_weaver(
    model: str | os.PathLike[str],
    *,
    name: str,
    out: str | os.PathLike[str] | None = None,
    preprocess: str | os.PathLike[str] | None = None,
    data_config: str | os.PathLike[str] | None = None,
    score: str | None = None,
    branch_map: str | os.PathLike[str] | None = None,
    license_file: str | os.PathLike[str] | None = None,
    provenance: str | None = None,
    weights: str | os.PathLike[str] | None = None,
    architecture: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    weights_atol: float = 1e-5,
    domain: Mapping[str, Any] | None = None,
) -> Path:
    """Import a weaver model as a sealed artifact; return its directory.

    Parameters
    ----------
    model : the ONNX file (weaver's ``--export-onnx`` output)
    name : tagger name (its score column, histogram category)
    out : artifact directory (default ``./<name>``)
    preprocess, data_config : weaver's ``preprocess.json`` or the data-config YAML (exactly
        one; the YAML also carries the padding modes and the formulas)
    score : top score over class names, e.g. ``"Tbqq / (Tbqq + QCD)"`` (``label_`` prefix
        optional); default for a 2-class model: the second class
    branch_map : a shipped map (``"jetclass"``, ``"cms"``) or a YAML file; a file extends the
        shipped map chosen from the names (``pfcand_``/``sv_`` names: ``cms``, else ``jetclass``)
    license_file, provenance : copied into the artifact (``LICENSE``, ``PROVENANCE.md``)
    weights, architecture, model_kwargs : optional torch state dict of the same network in a
        :data:`~hepml_coffea.models.MODEL_REGISTRY` architecture (weaver's ``mod.`` prefix
        stripped), checked against the graph to ``weights_atol`` on the dry batch
    domain : training domain recorded in model.yaml (e.g. ``{"pt": [500, 1000], "abs_eta_max": 2}``)

    Raises
    ------
    WeaverImportError
        with a one-line message naming the file, input or names at fault.
    """
    onnx_path = Path(model)
    if not onnx_path.is_file():
        msg = f"ONNX model {onnx_path} does not exist"
        raise WeaverImportError(msg)
    if (preprocess is None) == (data_config is None):
        msg = "give exactly one of preprocess (weaver's preprocess.json) or data_config (the data-config YAML)"
        raise WeaverImportError(msg)
    if not name or not str(name).strip() or "/" in str(name):
        msg = f"tagger name {name!r} must be a non-empty name without '/'"
        raise WeaverImportError(msg)
    try:
        cfg = read_preprocess_json(preprocess) if preprocess is not None else read_data_config(data_config)  # type: ignore[arg-type]
        base = load_branch_map(_default_map(cfg))
        bmap = base if branch_map is None else (
            load_branch_map(branch_map) if str(branch_map) in ("jetclass", "cms") else base.merged(load_branch_map(branch_map)))
    except (WeaverConfigError, TranslationError) as err:
        raise WeaverImportError(str(err)) from None
    session = _session(onnx_path)
    graph_inputs = [i.name for i in session.get_inputs()]
    dropped = [i.name for i in cfg.inputs if i.name not in graph_inputs]
    spec = weaver_spec(cfg, bmap, graph_inputs)
    classes = tuple(_strip(c) for c in cfg.labels)
    if len(set(classes)) != len(classes):
        msg = f"labels {list(cfg.labels)} are not unique"
        raise WeaverImportError(msg)
    if score is None:
        if len(classes) != 2:
            msg = f"the model has {len(classes)} classes {list(classes)}: give --score, e.g. 'Tbqq / (Tbqq + QCD)'"
            raise WeaverImportError(msg)
        score = classes[1]
    score_text = _check_score(score, classes)
    rec, batch, onnx_out = _dry_run(session, spec, len(classes), onnx_path)
    torch_model, weights_rec = None, None
    if weights is not None:
        if architecture is None:
            msg = "weights given without architecture (a registry class name, e.g. ParticleNet)"
            raise WeaverImportError(msg)
        torch_model, weights_rec = _torch_weights(Path(weights), architecture, model_kwargs, spec, batch, onnx_out,
                                                  rec["onnx_output"]["kind"] == "probabilities", weights_atol)
    out_dir = Path(out) if out is not None else Path(str(name))

    def fill(tmp: Path) -> None:
        shutil.copy(onnx_path, tmp / "model.onnx")
        src = Path(preprocess if preprocess is not None else data_config)  # type: ignore[arg-type]
        src_name = "weaver_preprocess.json" if preprocess is not None else "weaver_data_config.yaml"
        shutil.copy(src, tmp / src_name)
        if license_file is not None:
            shutil.copy(license_file, tmp / "LICENSE")
        if provenance:
            (tmp / "PROVENANCE.md").write_text(provenance if provenance.endswith("\n") else provenance + "\n")
        doc: dict[str, Any] = {
            "format": FORMAT, "name": str(name),
            "class_name": ONNX_ONLY if torch_model is None else type(torch_model).__name__,
            "input_kind": "blocks", "inputs": list(spec.input_names or ()), "input_spec": spec.to_dict(),
            "model_kwargs": {} if torch_model is None else torch_model.config(),
            "classes": list(classes), "score": score_text, **rec,
            "cpu_backend": {"chosen": "onnxruntime", "how": "the imported graph (no measurement yet)"},
            "weaver": {
                "source": cfg.source, "config_file": src_name, "onnx_sha256": _sha(onnx_path),
                "config_sha256": _sha(src), "labels": list(cfg.labels), "inputs_dropped": dropped,
                "pad_mode_known": cfg.pad_mode_known, "branch_map": bmap.name,
                "command": " ".join(Path(sys.argv[0]).name if i == 0 else a for i, a in enumerate(sys.argv)),
            },
        }
        if domain:
            doc["domain"] = dict(domain)
        if weights_rec is not None:
            doc["weaver"]["torch_weights"] = weights_rec
        (tmp / "model.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        (tmp / "metrics.json").write_text(json.dumps({}, indent=2))
        if torch_model is not None:
            from safetensors.torch import save_file

            state = {k: v.detach().cpu().contiguous() for k, v in torch_model.state_dict().items()}
            save_file(state, str(tmp / "weights.safetensors"))
            # the imported graph and these weights are one network (checked above): bound like an export
            doc["onnx"] = {"file": "model.onnx", "sha256": _sha(onnx_path), "source": "the imported weaver graph",
                           "weights_sha256": _sha(tmp / "weights.safetensors"),
                           "max_abs_diff_vs_weights": weights_rec["max_abs_diff_vs_onnx"] if weights_rec else None}
            (tmp / "model.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))

    seal_artifact(out_dir, fill)
    if dropped:
        log.info("%s: inputs %s of the config are not inputs of the graph (dropped)", name, dropped)
    return out_dir
