"""weaver's two descriptions of a model's inputs, read into one neutral form.

* ``preprocess.json`` — what ``weaver --export-onnx`` writes beside ``model.onnx`` and what
  CMSSW reads: ``output_names``, ``input_names`` and per input ``var_names``,
  ``var_length`` (or CMS's ``min_length`` / ``max_length``) and per variable ``median``,
  ``norm_factor``, ``replace_inf_value``, ``lower_bound``, ``upper_bound``, ``pad``.
  It has neither the padding mode nor the formulas of derived variables.
* the data-config YAML weaver trains from — ``new_variables`` (formulas), ``inputs``
  (``length``, ``pad_mode``, ``vars: [name, subtract_by, multiply_by, clip_min, clip_max,
  pad_value]``), ``preprocess`` (``method``, optional ``params``), ``labels``.

:func:`read_preprocess_json` and :func:`read_data_config` return a :class:`WeaverConfig`.
Transform semantics are weaver's (``weaver/utils/dataset.py:_finalize_inputs``): a variable
whose centre is ``None`` is not transformed and not clipped; otherwise
``clip((x - center) * scale, min, max)`` (clipping after scaling); then padding
(``constant`` with ``pad_value``, or ``wrap``); then NaN -> 0.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["WeaverConfig", "WeaverConfigError", "WeaverInput", "WeaverVar", "read_data_config", "read_preprocess_json"]

#: |bound| at or above which preprocess.json's lower/upper bound means "no clipping"
NO_CLIP = 1e30


class WeaverConfigError(ValueError):
    """A weaver preprocess.json / data config that cannot be imported (the message says why)."""


@dataclass(frozen=True)
class WeaverVar:
    """One input variable: its name and weaver's transform (``center`` None: untouched)."""

    name: str
    center: float | None = None
    scale: float = 1.0
    clip_min: float | None = None
    clip_max: float | None = None
    pad_value: float = 0.0


@dataclass(frozen=True)
class WeaverInput:
    """One model input: name, length, padding mode and its variables in order."""

    name: str
    length: int
    pad_mode: str
    vars: tuple[WeaverVar, ...]


@dataclass(frozen=True)
class WeaverConfig:
    """What an importer needs from weaver's files.

    Attributes
    ----------
    inputs : the model inputs in weaver's order (may include inputs the ONNX graph lacks,
        e.g. ``pf_vectors``: the importer keeps those the session reports)
    labels : class names in output order (``label_QCD``, ...)
    new_variables : derived-variable formulas (data config only; empty for preprocess.json)
    source : ``"preprocess.json"`` or ``"data-config"``
    pad_mode_known : False for preprocess.json (which does not record it)
    """

    inputs: tuple[WeaverInput, ...]
    labels: tuple[str, ...]
    new_variables: dict[str, str] = field(default_factory=dict)
    source: str = "preprocess.json"
    pad_mode_known: bool = True


def _num(x: Any, what: str, path: Path) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        msg = f"{path}: {what} is {x!r}, not a number"
        raise WeaverConfigError(msg) from None
    if math.isnan(v):
        msg = f"{path}: {what} is NaN"
        raise WeaverConfigError(msg)
    return v


def _load(path: str | os.PathLike[str], kind: str) -> tuple[Path, Any]:
    p = Path(path)
    if not p.is_file():
        msg = f"weaver {kind} {p} does not exist"
        raise WeaverConfigError(msg)
    text = p.read_text()
    try:
        doc = json.loads(text) if kind == "preprocess.json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as err:
        msg = f"{p}: not a valid {'JSON' if kind == 'preprocess.json' else 'YAML'} file ({str(err).splitlines()[0]})"
        raise WeaverConfigError(msg) from None
    if not isinstance(doc, dict):
        msg = f"{p}: a weaver {kind} must be a mapping at the top level"
        raise WeaverConfigError(msg)
    return p, doc


def read_preprocess_json(path: str | os.PathLike[str]) -> WeaverConfig:
    """Read weaver's ``preprocess.json`` (weaver's ``var_length`` or CMS's ``min_length`` /
    ``max_length``, in which case the block length is ``max_length``).

    The padding mode is not in the file: every input is read as ``constant`` (exact for
    masked models, whose outputs do not depend on padded slots; the importer checks that).

    Raises
    ------
    WeaverConfigError
        naming the missing key or the bad value.
    """
    p, doc = _load(path, "preprocess.json")
    for key in ("input_names", "output_names"):
        if not isinstance(doc.get(key), list) or not doc[key]:
            msg = f"{p}: missing or empty {key!r} (is this weaver's preprocess.json?)"
            raise WeaverConfigError(msg)
    inputs = []
    for name in doc["input_names"]:
        block = doc.get(name)
        if not isinstance(block, dict) or "var_names" not in block:
            msg = f"{p}: input {name!r} is listed in input_names but has no var_names block"
            raise WeaverConfigError(msg)
        if "var_length" in block:
            length = block["var_length"]
        elif "max_length" in block:
            length = block["max_length"]
        else:
            msg = f"{p}: input {name!r} has neither var_length nor min_length/max_length"
            raise WeaverConfigError(msg)
        length = int(_num(length, f"{name}.var_length", p))
        infos = block.get("var_infos", {})
        vars_ = []
        for v in block["var_names"]:
            info = infos.get(v)
            if info is None:
                msg = f"{p}: input {name!r} variable {v!r} has no var_infos entry"
                raise WeaverConfigError(msg)
            median = _num(info.get("median", 0), f"{v}.median", p)
            norm = _num(info.get("norm_factor", 1), f"{v}.norm_factor", p)
            lo = _num(info.get("lower_bound", -1e32), f"{v}.lower_bound", p)
            hi = _num(info.get("upper_bound", 1e32), f"{v}.upper_bound", p)
            pad = _num(info.get("pad", 0), f"{v}.pad", p)
            lo_n = None if lo <= -NO_CLIP else lo
            hi_n = None if hi >= NO_CLIP else hi
            identity = median == 0 and norm == 1 and lo_n is None and hi_n is None
            vars_.append(WeaverVar(v, None if identity else median, norm, lo_n, hi_n, pad))
        inputs.append(WeaverInput(str(name), length, "constant", tuple(vars_)))
    return WeaverConfig(tuple(inputs), tuple(str(x) for x in doc["output_names"]), {}, "preprocess.json",
                        pad_mode_known=False)


def read_data_config(path: str | os.PathLike[str]) -> WeaverConfig:
    """Read a weaver data-config YAML (``inputs``, ``new_variables``, ``labels``,
    ``preprocess``), with weaver's defaults for a short ``vars`` entry: ``[name]`` or
    ``[name, None]`` untouched, else ``subtract_by``, ``multiply_by`` (1), ``clip_min`` (-5),
    ``clip_max`` (5), ``pad_value`` (0). ``preprocess.params`` (weaver's auto-generated
    YAML) takes precedence where present.

    Raises
    ------
    WeaverConfigError
        ``method: auto`` without params (the centres are computed from the training data:
        import the ``.auto.yaml`` weaver wrote, or ``preprocess.json``), ``custom`` labels,
        a mask input with ``pad_mode: wrap``, or a malformed entry.
    """
    p, doc = _load(path, "data config")
    if not isinstance(doc.get("inputs"), dict) or not doc["inputs"]:
        msg = f"{p}: no 'inputs' section (is this a weaver data config?)"
        raise WeaverConfigError(msg)
    prep = doc.get("preprocess") or {}
    auto = str(prep.get("method", "manual")).lower().startswith("auto")
    params = prep.get("params") or {}
    inputs = []
    for name, block in doc["inputs"].items():
        if not isinstance(block, dict) or "vars" not in block or "length" not in block:
            msg = f"{p}: input {name!r} needs 'length' and 'vars'"
            raise WeaverConfigError(msg)
        length = int(_num(block["length"], f"{name}.length", p))
        pad_mode = str(block.get("pad_mode", "constant")).lower()
        if pad_mode not in ("constant", "wrap"):
            msg = f"{p}: input {name!r} pad_mode {pad_mode!r}; weaver knows 'constant' and 'wrap'"
            raise WeaverConfigError(msg)
        if str(name).endswith("_mask") and pad_mode != "constant":
            msg = f"{p}: mask input {name!r} must use pad_mode constant (weaver refuses it too)"
            raise WeaverConfigError(msg)
        vars_ = []
        for entry in block["vars"]:
            v = entry if isinstance(entry, list) else [entry]
            if not v or not isinstance(v[0], str):
                msg = f"{p}: input {name!r} has a malformed vars entry {entry!r}"
                raise WeaverConfigError(msg)

            def get(i: int, default: Any, v: list[Any] = v) -> Any:
                return v[i] if len(v) > i else default

            if v[0] in params:
                pr = params[v[0]]
                center, scale = pr.get("center"), pr.get("scale", 1)
                lo, hi, pad = pr.get("min", -5), pr.get("max", 5), pr.get("pad_value", 0)
            else:
                center = get(1, "auto" if auto else None)
                scale, lo, hi, pad = get(2, 1), get(3, -5), get(4, 5), get(5, 0)
            if center == "auto":
                msg = (f"{p}: variable {v[0]!r} uses automatic standardisation (preprocess.method auto) and the "
                       "file has no params: import the '.auto.yaml' weaver wrote after training, or preprocess.json")
                raise WeaverConfigError(msg)
            if center is None:
                vars_.append(WeaverVar(v[0], None, 1.0, None, None, _num(pad, f"{v[0]}.pad_value", p)))
            else:
                vars_.append(WeaverVar(v[0], _num(center, f"{v[0]}.subtract_by", p), _num(scale, f"{v[0]}.multiply_by", p),
                                       None if lo is None else _num(lo, f"{v[0]}.clip_min", p),
                                       None if hi is None else _num(hi, f"{v[0]}.clip_max", p),
                                       _num(pad, f"{v[0]}.pad_value", p)))
        inputs.append(WeaverInput(str(name), length, pad_mode, tuple(vars_)))
    labels = doc.get("labels") or {}
    if labels.get("type", "simple") != "simple" or not isinstance(labels.get("value"), list):
        msg = (f"{p}: labels of type {labels.get('type')!r}; only 'simple' labels (a list of classes) give "
               "the class order of the outputs")
        raise WeaverConfigError(msg)
    new_vars = doc.get("new_variables") or {}
    if not isinstance(new_vars, dict) or not all(isinstance(v, str) for v in new_vars.values()):
        msg = f"{p}: new_variables must map names to formula strings"
        raise WeaverConfigError(msg)
    return WeaverConfig(tuple(inputs), tuple(str(x) for x in labels["value"]), {str(k): v for k, v in new_vars.items()},
                        "data-config")
