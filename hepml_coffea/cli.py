"""``hepml-coffea``: a thin command-line front over importable functions.

Sub-commands: ``generate``, ``summary``, ``train``, ``run``, ``plot``, ``demo``.
Each one parses arguments and calls one function of the package; nothing here is
needed to use the package from analysis code.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _cmd_generate(args: argparse.Namespace) -> int:
    from hepml_coffea.samples import generate

    out = generate(
        args.process, args.events, args.seed, args.out, workers=args.workers,
        pthat_min=args.pthat_min, eta_max=args.eta_max, detector=not args.no_detector,
    )
    print(f"wrote {out}")
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    from hepml_coffea.summary import constituent_summary

    for path in args.files:
        print(json.dumps(constituent_summary(path), indent=2))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from hepml_coffea.training.train import TrainConfig, train

    cfg = TrainConfig(
        model=args.model, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        seed=args.seed, max_jets=args.max_jets, device=args.device, patience=args.patience,
        threads=args.threads,
    )
    metrics = train(args.signal, args.background, args.out, cfg)
    print(json.dumps(metrics, indent=2))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from hepml_coffea.run import run_fileset

    run_fileset(
        fileset=args.fileset, out=args.out, executor=args.executor, workers=args.workers,
        scheduler=args.scheduler, chunksize=args.chunksize, taggers=args.taggers,
        skip_bad_files=args.skip_bad_files, save_scores=args.save_scores,
        dashboard_address=args.dashboard_address, device=args.device,
    )
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from hepml_coffea.plots import plot_output

    for p in plot_output(args.output, args.outdir):
        print(f"wrote {p}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from hepml_coffea.demo import main_job

    main_job(out=args.out, workers=args.workers, events=args.events, executor=args.executor)
    return 0


def _cmd_condor_split(args: argparse.Namespace) -> int:
    from hepml_coffea.condor import write_jobs

    paths = write_jobs(
        args.fileset, args.outdir, files_per_job=args.files_per_job, n_jobs=args.n_jobs,
        taggers=args.taggers, chunksize=args.chunksize, python=args.python, env_setup=args.env_setup or [],
        request_cpus=args.request_cpus, request_memory=args.request_memory, request_disk=args.request_disk,
        request_gpus=args.request_gpus, device=args.device, skip_bad_files=args.skip_bad_files,
        transfer_taggers=args.transfer_taggers,
    )
    print(f"wrote {len(paths['jobs'])} job fileset(s), {paths['script']} and {paths['submit']}")
    print(f"submit with:  cd {paths['submit'].parent} && condor_submit {paths['submit'].name}")
    return 0


def _cmd_condor_merge(args: argparse.Namespace) -> int:
    from hepml_coffea.condor import merge_outputs

    merged = merge_outputs(args.outputs, out=args.out)
    print(merged["report"])
    print(f"wrote {args.out}")
    return 0


def _cmd_condor_cluster_script(args: argparse.Namespace) -> int:
    from hepml_coffea.condor import htcondor_job_script

    print(htcondor_job_script(
        kind=args.kind, cores=args.cores, memory=args.memory, disk=args.disk, gpus=args.gpus,
        env_setup=args.env_setup or [], python=args.python, log_directory=args.log_directory,
    ))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    p = argparse.ArgumentParser(prog="hepml-coffea", description=__doc__.splitlines()[0])
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

    s = sub.add_parser("summary", help="constituent summary of NanoAOD/PFNano files")
    s.add_argument("files", nargs="+")
    s.set_defaults(func=_cmd_summary)

    t = sub.add_parser("train", help="train a tagger and write an artifact directory")
    t.add_argument("--model", required=True,
                   choices=["cnn", "lstm", "particlenet", "particlenet-lite", "pfn", "baseline"])
    t.add_argument("--signal", nargs="+", required=True, help="ttbar files (truth-matched tops used)")
    t.add_argument("--background", nargs="+", required=True, help="QCD files")
    t.add_argument("--out", required=True)
    t.add_argument("--epochs", type=int, default=20)
    t.add_argument("--batch-size", type=int, default=256)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--max-jets", type=int, default=0, help="cap on jets per class (0 = all)")
    t.add_argument("--patience", type=int, default=4)
    t.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    t.add_argument("--device", default="auto")
    t.set_defaults(func=_cmd_train)

    r = sub.add_parser("run", help="run the TaggerProcessor over a fileset")
    r.add_argument("--fileset", required=True, help="fileset JSON {dataset: [files] or {files: ...}}")
    r.add_argument("--executor", choices=["iterative", "futures", "dask", "dask-cuda"], default="dask")
    r.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler")
    r.add_argument("--workers", type=int, default=2)
    r.add_argument("--chunksize", type=int, default=10000)
    r.add_argument("--taggers", nargs="+", default=None, help="shipped tagger names or artifact paths")
    r.add_argument("--skip-bad-files", action="store_true")
    r.add_argument("--save-scores", default=None, help="folder for per-jet scores (parquet)")
    r.add_argument("--dashboard-address", default="127.0.0.1:8787")
    r.add_argument("--device", default="auto")
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

    co = sub.add_parser("condor", help="HTCondor: split a fileset into batch jobs, merge job outputs, "
                                       "show a Dask worker job")
    csub = co.add_subparsers(dest="condor_command", required=True)
    cs = csub.add_parser("split", help="write per-job filesets, run_job.sh and jobs.sub into OUTDIR")
    cs.add_argument("fileset", help="fileset JSON")
    cs.add_argument("--outdir", required=True)
    how = cs.add_mutually_exclusive_group()
    how.add_argument("--files-per-job", type=int, default=1)
    how.add_argument("--n-jobs", type=int, default=None)
    cs.add_argument("--taggers", nargs="+", default=None, help="shipped tagger names or artifact paths")
    cs.add_argument("--transfer-taggers", action="store_true",
                    help="let HTCondor copy the artifact directories into each job")
    cs.add_argument("--chunksize", type=int, default=10000)
    cs.add_argument("--device", default="auto")
    cs.add_argument("--skip-bad-files", action="store_true")
    cs.add_argument("--python", default=None, help="python on the worker nodes (default: hepml-coffea on PATH)")
    cs.add_argument("--env-setup", action="append", default=None, metavar="LINE",
                    help="shell line run before the job (repeatable), e.g. '. /path/venv/bin/activate'")
    cs.add_argument("--request-cpus", type=int, default=1)
    cs.add_argument("--request-memory", default="4GB")
    cs.add_argument("--request-disk", default="4GB")
    cs.add_argument("--request-gpus", type=int, default=0)
    cs.set_defaults(func=_cmd_condor_split)
    cm = csub.add_parser("merge", help="add job outputs (.coffea) into one output")
    cm.add_argument("outputs", nargs="+")
    cm.add_argument("--out", required=True)
    cm.set_defaults(func=_cmd_condor_merge)
    cc = csub.add_parser("cluster-script", help="print the submit description of one Dask worker job")
    cc.add_argument("--kind", choices=["cpu", "gpu"], default="cpu")
    cc.add_argument("--cores", type=int, default=1)
    cc.add_argument("--memory", default="4GB")
    cc.add_argument("--disk", default="4GB")
    cc.add_argument("--gpus", type=int, default=1)
    cc.add_argument("--python", default=None)
    cc.add_argument("--log-directory", default=None)
    cc.add_argument("--env-setup", action="append", default=None, metavar="LINE")
    cc.set_defaults(func=_cmd_condor_cluster_script)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``hepml-coffea``."""
    args: Any = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
