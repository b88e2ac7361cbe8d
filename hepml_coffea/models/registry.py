"""Model registry: names -> (class, default kwargs, input kind).

The artifact YAML stores ``class_name`` and the constructor kwargs returned by
``model.config()``; :func:`model_from_config` rebuilds the model from those,
accepting only the classes listed here (no arbitrary imports).
"""

from __future__ import annotations

import copy
from typing import Any, Dict, NamedTuple, Type

from torch import nn

from .cnn import JetImageCNN
from .deepsets import ParticleFlowNetwork
from .lstm import JetLSTM
from .particlenet import (
    DEFAULT_CONV_PARAMS,
    DEFAULT_FC_PARAMS,
    LITE_CONV_PARAMS,
    LITE_FC_PARAMS,
    ParticleNet,
)

__all__ = ["ModelSpec", "MODEL_REGISTRY", "build_model", "model_from_config", "count_parameters"]


class ModelSpec(NamedTuple):
    """Registry entry. ``defaults`` are the constructor kwargs of the named variant."""

    cls: Type[nn.Module]
    defaults: Dict[str, Any]
    input_kind: str


MODEL_REGISTRY: Dict[str, ModelSpec] = {
    "cnn": ModelSpec(
        JetImageCNN,
        {"in_channels": 1, "npix": 40, "conv_channels": [8, 8, 8, 8], "dense": [64, 64, 64], "num_classes": 2},
        JetImageCNN.input_kind,
    ),
    "lstm": ModelSpec(
        JetLSTM,
        {"input_dim": 7, "hidden": 128, "num_layers": 1, "bidirectional": False, "dense": [64], "num_classes": 2,
         "reverse": True, "pool": "meanmax",
         "embed": [64, 64]},
        JetLSTM.input_kind,
    ),
    "particlenet": ModelSpec(
        ParticleNet,
        {
            "input_dims": 7,
            "conv_params": DEFAULT_CONV_PARAMS,
            "fc_params": DEFAULT_FC_PARAMS,
            "use_fusion": True,
            "use_fts_bn": True,
            "num_classes": 2,
        },
        ParticleNet.input_kind,
    ),
    "particlenet-lite": ModelSpec(
        ParticleNet,
        {
            "input_dims": 7,
            "conv_params": LITE_CONV_PARAMS,
            "fc_params": LITE_FC_PARAMS,
            "use_fusion": True,
            "use_fts_bn": True,
            "num_classes": 2,
        },
        ParticleNet.input_kind,
    ),
    "pfn": ModelSpec(
        ParticleFlowNetwork,
        {"input_dims": 7, "phi_sizes": [100, 100, 256], "f_sizes": [100, 100, 100], "num_classes": 2},
        ParticleFlowNetwork.input_kind,
    ),
}

_CLASSES: Dict[str, Type[nn.Module]] = {spec.cls.__name__: spec.cls for spec in MODEL_REGISTRY.values()}


def build_model(name: str, **overrides: Any) -> nn.Module:
    """Build registered model ``name`` with its default kwargs updated by ``overrides``."""
    try:
        spec = MODEL_REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {sorted(MODEL_REGISTRY)}") from None
    unknown = set(overrides) - set(spec.defaults)
    if unknown:
        raise ValueError(f"unknown argument(s) {sorted(unknown)} for model {name!r}; allowed: {sorted(spec.defaults)}")
    kwargs = copy.deepcopy(spec.defaults)
    kwargs.update(copy.deepcopy(overrides))
    return spec.cls(**kwargs)


def model_from_config(class_name: str, kwargs: Dict[str, Any]) -> nn.Module:
    """Rebuild a model from the artifact's ``class_name`` and ``config()`` kwargs.

    Only classes present in :data:`MODEL_REGISTRY` are accepted.
    """
    cls = _CLASSES.get(class_name)
    if cls is None:
        raise ValueError(f"unknown model class {class_name!r}; known classes: {sorted(_CLASSES)}")
    return cls(**copy.deepcopy(dict(kwargs)))


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only))
