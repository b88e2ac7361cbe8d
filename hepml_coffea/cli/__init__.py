"""``hepml-coffea``: a thin command-line front over importable functions.

Sub-commands: ``generate``, ``summary``, ``train``, ``run``, ``plot``, ``demo``,
``import weaver|torchscript|onnx``, ``export weaver``, ``taggers``, ``evaluate``, ``condor``, ``slurm``.
Each one parses arguments and calls one function of the package; nothing here is
needed to use the package from analysis code.
"""

from hepml_coffea.cli.main import build_parser, main, quiet_schema_warnings, setup_logging

__all__ = ["build_parser", "main", "quiet_schema_warnings", "setup_logging"]
