"""weaver-trained models in and out: ONNX + ``preprocess.json`` / data-config YAML.

* :func:`import_weaver` (:mod:`.importer`): a weaver model -> a sealed artifact
  (``hepml-coffea import weaver MODEL.onnx --preprocess preprocess.json --name NAME``);
* :func:`export_weaver` (:mod:`.export`): an artifact -> ``model.onnx`` + weaver-style
  ``preprocess.json`` + the branch map that reads it back;
* :mod:`.config` reads weaver's files, :mod:`.translate` turns their formulas and branch
  names into feature expressions (shipped maps: ``jetclass``, ``cms``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["export_weaver", "import_weaver"]


def __getattr__(name: str) -> Any:
    if name == "import_weaver":
        from .importer import import_weaver

        return import_weaver
    if name == "export_weaver":
        from .export import export_weaver

        return export_weaver
    raise AttributeError(f"module 'hepml_coffea.weaver' has no attribute {name!r}")
