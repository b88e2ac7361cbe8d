"""Model zoo: one file per architecture (weaver-core style).

All torch models output logits of shape (N, 2): class 0 = QCD, class 1 = top
(score = softmax(logits)[:, 1]), carry a class attribute ``input_kind`` in
{"image", "sequence", "pointcloud"} and expose their constructor kwargs via
``config()`` so :func:`model_from_config` can rebuild them from artifact YAML.

===================  =====================  =========================================
name                 class                  forward
===================  =====================  =========================================
cnn                  JetImageCNN            forward(image)
lstm                 JetLSTM                forward(features, mask)
particlenet(-lite)   ParticleNet            forward(points, features, mask)
pfn                  ParticleFlowNetwork    forward(features, mask)
===================  =====================  =========================================

:class:`CutBasedTopTagger` (numpy, msoftdrop x tau32 likelihood ratio) is the
classic comparison reference.
"""

from .baseline import CutBasedTopTagger, tau32_ratio
from .cnn import JetImageCNN
from .deepsets import ParticleFlowNetwork
from .lstm import JetLSTM
from .particlenet import ParticleNet, ParticleNetPyG, dense_to_pyg_batch, particlenet_pyg_forward
from .registry import MODEL_REGISTRY, ModelSpec, build_model, count_parameters, model_from_config

__all__ = [
    "CutBasedTopTagger",
    "tau32_ratio",
    "JetImageCNN",
    "JetLSTM",
    "ParticleNet",
    "ParticleNetPyG",
    "ParticleFlowNetwork",
    "dense_to_pyg_batch",
    "particlenet_pyg_forward",
    "MODEL_REGISTRY",
    "ModelSpec",
    "build_model",
    "model_from_config",
    "count_parameters",
]
