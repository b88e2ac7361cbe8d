"""Self-describing tagger artifacts: weights, architecture, input spec, metrics, hash.

An artifact is a directory::

    model.yaml           format, name, class_name, model_kwargs, input_spec, inputs,
                         selection, training summary
    weights.safetensors  torch weights (safetensors: loading runs no pickled code)
    baseline.json        instead of weights, for the cut-based baseline
    metrics.json         test AUC, accuracy, 1/eB at eS = 30 % and 50 %, working points
    model.ts             optional TorchScript export for serving (never loaded implicitly)
    model.onnx           optional ONNX export for the ONNX Runtime backend
                         (:func:`hepml_coffea.inference.backends.export_onnx`); the CPU
                         backend chosen by measurement is recorded in model.yaml
                         (``cpu_backend``, :func:`hepml_coffea.inference.tuning.choose_backend`)
    model.pt2            optional AOTInductor package for the ``aoti`` backend
                         (:func:`hepml_coffea.inference.backends.export_aoti`): compiled
                         native code, loaded only for that backend (by name, or by
                         ``"auto"`` when it is the recorded choice), so take such
                         artifacts only from sources you trust, as any compiled library
    probe.npz            a fixed batch of inputs and the scores these weights give them, with
                         each runtime record's ``weights_sha256``: the hash chain that binds
                         model.onnx / model.pt2 to the weights
                         (:mod:`hepml_coffea.inference.probes`)
    roc.png, loss.png    optional plots
    manifest.json        sha256 of every file above and the artifact hash

:func:`load_artifact` recomputes every checksum and refuses an artifact whose files
do not match (:class:`ArtifactIntegrityError`); the model is rebuilt only from
classes in :data:`hepml_coffea.models.MODEL_REGISTRY`.
"""

from __future__ import annotations

from .format import FORMAT, HASHED, INPUT_NAMES, ONNX_ONLY, Artifact, ArtifactError, ArtifactIntegrityError
from .loading import load_artifact, resolve_artifact, shipped_taggers
from .sealing import seal_artifact, write_description
from .writing import import_onnx, import_torchscript, save_artifact, update_artifact

__all__ = [
    "FORMAT",
    "HASHED",
    "INPUT_NAMES",
    "ONNX_ONLY",
    "Artifact",
    "ArtifactError",
    "ArtifactIntegrityError",
    "import_onnx",
    "import_torchscript",
    "load_artifact",
    "resolve_artifact",
    "save_artifact",
    "seal_artifact",
    "shipped_taggers",
    "update_artifact",
    "write_description",
]
