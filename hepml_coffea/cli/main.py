"""``hepml-coffea``: a thin command-line front over importable functions.

Sub-commands: ``generate``, ``summary``, ``train``, ``run``, ``plot``, ``demo``,
``import weaver|torchscript|onnx``, ``export weaver``, ``taggers``, ``evaluate``, ``condor``, ``slurm``.
Each one parses arguments and calls one function of the package; nothing here is
needed to use the package from analysis code.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from hepml_coffea.cli.batch_commands import _add_condor_parser, _add_slurm_parser
from hepml_coffea.cli.commands import (
    _add_run_choices,
    _cmd_demo,
    _cmd_evaluate,
    _cmd_generate,
    _cmd_plot,
    _cmd_run,
    _cmd_summary,
    _cmd_train,
)
from hepml_coffea.cli.model_commands import (
    _cmd_export_weaver,
    _cmd_import_byo,
    _cmd_import_weaver,
    _cmd_taggers,
)
from hepml_coffea.config import EXECUTORS


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    p = argparse.ArgumentParser(prog="hepml-coffea", description=__doc__.splitlines()[0])
    p.add_argument("--debug", action="store_true", help="on an error, print the whole traceback")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="generate top (ttbar) or QCD jets as a PFNano ROOT file")
    g.add_argument("--process", choices=["ttbar", "qcd"], required=True)
    g.add_argument("--events", type=int, required=True)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--out", required=True)
    g.add_argument("--workers", type=int, default=1)
    g.add_argument("--pthat-min", type=float, default=500.0)
    g.add_argument("--eta-max", type=float, default=2.5)
    g.add_argument("--no-detector", action="store_true", help="switch the detector response off")
    g.set_defaults(func=_cmd_generate)

    im = sub.add_parser("import", help="seal a model trained elsewhere as a tagger artifact")
    isub = im.add_subparsers(dest="format", required=True)
    iw = isub.add_parser("weaver", help="a weaver-trained model: ONNX + preprocess.json or the data-config YAML")
    iw.add_argument("model", help="the ONNX file (weaver --export-onnx)")
    src = iw.add_mutually_exclusive_group(required=True)
    src.add_argument("--preprocess", help="weaver's preprocess.json (written beside the ONNX)")
    src.add_argument("--data-config", help="the weaver data-config YAML the model was trained with")
    iw.add_argument("--name", required=True, help="tagger name (score column)")
    iw.add_argument("--score", default=None, help="top score over class names, e.g. 'Tbqq / (Tbqq + QCD)'")
    iw.add_argument("--branch-map", default=None,
                    help="shipped map (jetclass, cms) or a YAML adding names (sections pf, sv, new_variables)")
    iw.add_argument("--out", default=None, help="artifact directory (default ./NAME)")
    iw.add_argument("--license", default=None, help="licence file to keep inside the artifact")
    iw.add_argument("--provenance", default=None, help="provenance text to keep inside the artifact")
    iw.set_defaults(func=_cmd_import_weaver)
    for fmt, what in (("torchscript", "a TorchScript file (torch.jit.script / trace)"),
                      ("onnx", "an ONNX graph with inputs named as the spec's kind (points, features, mask ...)")):
        ib = isub.add_parser(fmt, help=f"{what} + an input spec YAML; checked on the bundled CMS sample")
        ib.add_argument("model", help=f"the {fmt} file")
        ib.add_argument("--spec", required=True, help="input spec YAML (kind, features, length, ...; see docs/)")
        ib.add_argument("--name", required=True, help="tagger name (score column)")
        ib.add_argument("--out", default=None, help="artifact directory (default ./NAME)")
        ib.add_argument("--pt-min", type=float, default=None, help="training domain: fat-jet pT lower edge (GeV)")
        ib.add_argument("--pt-max", type=float, default=None, help="training domain: fat-jet pT upper edge (GeV)")
        ib.add_argument("--abs-eta-max", type=float, default=None, help="training domain: |eta| upper edge")
        ib.add_argument("--sample", default=None, help="training domain: the sample it was trained on")
        ib.set_defaults(func=_cmd_import_byo)

    tg = sub.add_parser("taggers", help="the shipped taggers (or given artifacts): inputs, size, domain, runtime, hash")
    tg.add_argument("taggers", nargs="*", help="artifact directories or names (default: every shipped tagger)")
    tg.add_argument("--json", action="store_true")
    tg.set_defaults(func=_cmd_taggers)

    ex = sub.add_parser("export", help="write a tagger in another tool's format")
    esub = ex.add_subparsers(dest="format", required=True)
    ew = esub.add_parser("weaver", help="ONNX + weaver-style preprocess.json + the branch map that reads it back")
    ew.add_argument("tagger", help="shipped tagger name or artifact directory")
    ew.add_argument("--out", required=True, help="output folder")
    ew.set_defaults(func=_cmd_export_weaver)

    s = sub.add_parser("summary", help="constituent summary of NanoAOD/PFNano files")
    s.add_argument("files", nargs="+")
    s.set_defaults(func=_cmd_summary)

    t = sub.add_parser("train", help="train a tagger and write an artifact directory")
    from hepml_coffea.models.registry import MODEL_REGISTRY

    t.add_argument("--model", default=None, choices=[*sorted(MODEL_REGISTRY), "baseline"],
                   help="architecture to train from scratch (or to warm-start with --init-from)")
    t.add_argument("--init-from", default=None, metavar="TAGGER",
                   help="start from this artifact's weights; an imported multi-class model (e.g. particlenet-jetclass) "
                        "is fine-tuned on the two classes of its score")
    t.add_argument("--time-budget", type=float, default=None, help="seconds of training at most")
    t.add_argument("--name", default=None, help="tagger name of the result (fine-tuning)")
    t.add_argument("--signal", nargs="+", required=True, help="ttbar files (truth-matched tops used)")
    t.add_argument("--background", nargs="+", required=True, help="QCD files")
    t.add_argument("--out", required=True)
    t.add_argument("--epochs", type=int, default=None, help="default 20 (3 when fine-tuning)")
    t.add_argument("--batch-size", type=int, default=None, help="default 256 (128 when fine-tuning)")
    t.add_argument("--lr", type=float, default=None, help="peak learning rate, default 1e-3 (3e-4 when fine-tuning)")
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--max-jets", type=int, default=0, help="cap on jets per class (0 = all)")
    t.add_argument("--patience", type=int, default=4)
    t.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    t.add_argument("--device", default="auto")
    t.add_argument("--augment", default="none", choices=["none", "reflect", "reflect+rotate"],
                   help="jet-frame symmetries as augmentation (sequence / point-cloud models)")
    t.add_argument("--teacher", default=None, metavar="TAGGER",
                   help="distil from this tagger's scores (cached beside the data), e.g. particlenet")
    t.add_argument("--distill", type=float, default=None, help="weight of the teacher term (default 0.5 with "
                   "--teacher, else 0)")
    t.add_argument("--temperature", type=float, default=2.0, help="distillation temperature")
    t.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="constructor argument over the registry's default, VALUE read as YAML "
                        "(e.g. pool=last, embed=[]: the paper's LSTM); repeatable")
    t.set_defaults(func=_cmd_train)

    ev = sub.add_parser("evaluate", help="standard evaluation of taggers on ttbar_*.root / qcd_*.root "
                        "(AUC, 1/eB with intervals, mass sculpting, truth definitions; table and plots)")
    ev.add_argument("--data", required=True, help="folder with ttbar_*.root and qcd_*.root "
                    "(workflows/make_eval_set.py writes one)")
    ev.add_argument("--taggers", nargs="+", default=None, help="shipped names or artifact folders (default: all shipped)")
    ev.add_argument("--out", default="docs/eval", help="folder for results.json, report.md and the plots")
    ev.add_argument("--cache", default=None, help="folder caching per-file jets and scores (per artifact hash)")
    ev.add_argument("--device", default="cpu")
    ev.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ev.add_argument("--curve", nargs="+", default=None, metavar="ARTIFACT",
                    help="extra learning-curve points: artifact folders, or folders of them (the shipped "
                         "taggers trained from scratch are points too); a table and learning_curve.png")
    ev.add_argument("--update-markdown", default=None, metavar="FILE",
                    help="replace the block between the evaluate markers of FILE (e.g. TAGGERS.md) with report.md")
    ev.set_defaults(func=_cmd_evaluate)

    r = sub.add_parser("run", help="run the TaggerProcessor over a fileset")
    r.add_argument("--fileset", required=True, help="fileset JSON {dataset: [files] or {files: ...}}")
    r.add_argument("--executor", choices=list(EXECUTORS), default="dask")
    r.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler")
    r.add_argument("--workers", type=int, default=2)
    r.add_argument("--chunksize", type=int, default=10000)
    r.add_argument("--taggers", nargs="+", default=None, help="shipped tagger names or artifact paths")
    r.add_argument("--skip-bad-files", action="store_true")
    r.add_argument("--save-scores", default=None, help="folder for per-jet scores (parquet)")
    r.add_argument("--dashboard-address", default="127.0.0.1:8787")
    r.add_argument("--device", default="auto")
    r.add_argument("--allow-cpu-fallback", action="store_true",
                   help="--executor dask-cuda where dask-cuda / a GPU is missing: run on CPU workers (a logged "
                        "warning) instead of failing")
    _add_run_choices(r)
    bat = r.add_argument_group("batch worker jobs (--executor slurm / htcondor; --workers = number of jobs)")
    bat.add_argument("--kind", choices=["cpu", "gpu"], default=None, help="gpu: --gres=gpu / request_gpus and "
                     "`dask cuda worker` (default cpu)")
    bat.add_argument("--cores", type=int, default=None, help="cores per job (default 1)")
    bat.add_argument("--memory", default=None, help="memory per job (default 4GB)")
    bat.add_argument("--walltime", default=None, help="Slurm: HH:MM:SS (default 01:00:00)")
    bat.add_argument("--partition", default=None, help="Slurm partition")
    bat.add_argument("--disk", default=None, help="HTCondor: disk per job (default 4GB)")
    bat.add_argument("--gpus", type=int, default=None, help="GPUs per job with --kind gpu (default 1)")
    bat.add_argument("--env-setup", action="append", default=None, metavar="LINE",
                     help="shell line run in the job before the worker (repeatable)")
    bat.add_argument("--log-directory", default=None, help="worker job logs")
    r.add_argument("--out", required=True, help="output .coffea file")
    r.set_defaults(func=_cmd_run)

    pl = sub.add_parser("plot", help="plots (PNG) from a run output")
    pl.add_argument("output")
    pl.add_argument("--outdir", default=None)
    pl.set_defaults(func=_cmd_plot)

    d = sub.add_parser("demo", help="the main job: bundled samples -> processor on a local Dask cluster -> plots")
    d.add_argument("--out", default="out")
    d.add_argument("--workers", type=int, default=2)
    d.add_argument("--events", type=int, default=0, help="0 = the bundled samples as they are")
    d.add_argument("--executor", choices=["iterative", "futures", "dask", "dask-cuda"], default="dask")
    d.set_defaults(func=_cmd_demo)

    _add_condor_parser(sub)
    _add_slurm_parser(sub)
    return p


#: warnings that are known to be harmless schema noise (coffea builds cross-references for
#: collections a file does not have); filtered in our entry points only
QUIET_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    ("Missing cross-reference", RuntimeWarning),
    ("Branch .* already exists", RuntimeWarning),
    ("Found duplicate branch", RuntimeWarning),
)


def quiet_schema_warnings() -> None:
    """Filter coffea's known-harmless schema warnings in this process and in the Dask
    workers it starts (through ``PYTHONWARNINGS``, read when a worker process starts)."""
    import os
    import warnings

    for message, category in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    plain = [f"ignore:{m}:{c.__name__}" for m, c in QUIET_WARNINGS if ".*" not in m]
    current = os.environ.get("PYTHONWARNINGS", "")
    os.environ["PYTHONWARNINGS"] = ",".join([x for x in [current, *plain] if x])


class _Plain(logging.Formatter):
    """The message alone for INFO; ``hepml-coffea: warning: ...`` above."""

    def format(self, record: logging.LogRecord) -> str:
        msg = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"hepml-coffea: {record.levelname.lower()}: {msg}"
        return msg


class _StdStream(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to ``sys.stdout`` / ``sys.stderr`` as they are when a record is emitted (a
    caller that swaps them, e.g. a test capturing output, gets the messages)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return getattr(sys, self._name)

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ assigns it; the property wins
        pass


def setup_logging(verbose: bool = False) -> None:
    """The command line's log handlers: the package's INFO messages (progress, reports) on
    stdout, warnings and errors on stderr; ``--debug`` adds DEBUG. Library code only logs
    to ``logging.getLogger("hepml_coffea")``; an analysis that imports the package sets up
    its own handlers (or none: then only warnings reach stderr, Python's default). Calling
    it again replaces the handlers it added (records still propagate to the root logger)."""
    root = logging.getLogger("hepml_coffea")
    for h in list(root.handlers):
        if getattr(h, "_hepml_cli", False):
            root.removeHandler(h)
    out = _StdStream("stdout")
    out.addFilter(lambda r: r.levelno < logging.WARNING)
    err = _StdStream("stderr")
    err.setLevel(logging.WARNING)
    for h in (out, err):
        h.setFormatter(_Plain("%(message)s"))
        h._hepml_cli = True  # type: ignore[attr-defined]
        root.addHandler(h)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def _one_line(err: BaseException) -> str:
    """``error: <what>`` plus a hint of what to do, on one line."""
    text = " ".join(str(err).split()) or type(err).__name__
    hint = {
        "FilesetError": "check the paths and tree names in the fileset",
        "ArtifactError": "check the tagger name/path (hepml-coffea run --taggers NAME_OR_DIR)",
        "ArtifactIntegrityError": "re-copy or re-train the artifact",
        "MissingBranchError": "the file lacks the branches named above",
        "WeaverImportError": "fix the file or name given above",
        "ConfigurationError": "fix the option named above",
        "FileNotFoundError": "check the path",
    }.get(type(err).__name__, "run with --debug for the traceback")
    return f"hepml-coffea: error: {type(err).__name__}: {text} ({hint})"


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``hepml-coffea``: one clear line per error, ``--debug`` for the traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line
    args: Any = build_parser().parse_args([a for a in argv if a != "--debug"])
    args.debug = debug
    setup_logging(debug)
    quiet_schema_warnings()
    from hepml_coffea.data.io import index_rntuple_fields

    index_rntuple_fields()  # the command line's own choice (see hepml_coffea.data.io)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("hepml-coffea: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the CLI turns every error into one line
        if args.debug:
            raise
        print(_one_line(err), file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
