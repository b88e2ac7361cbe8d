"""``hepml-coffea condor ...`` / ``slurm ...``: job splitting, merging and cluster scripts."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hepml_coffea.cli.commands import _add_run_choices, _selection


def _cmd_condor_split(args: argparse.Namespace) -> int:
    from hepml_coffea.batch.htcondor import write_jobs

    paths = write_jobs(
        args.fileset, args.outdir, files_per_job=args.files_per_job, n_jobs=args.n_jobs,
        taggers=args.taggers, chunksize=args.chunksize, python=args.python, env_setup=args.env_setup or [],
        request_cpus=args.request_cpus, request_memory=args.request_memory, request_disk=args.request_disk,
        request_gpus=args.request_gpus, device=args.device, skip_bad_files=args.skip_bad_files,
        transfer_taggers=args.transfer_taggers, selection=_selection(args), backend=args.backend,
    )
    print(f"wrote {len(paths['jobs'])} job fileset(s), {paths['script']} and {paths['submit']}")
    print(f"submit with:  cd {paths['submit'].parent} && condor_submit {paths['submit'].name}")
    return 0


def _cmd_condor_merge(args: argparse.Namespace) -> int:
    from hepml_coffea.batch.core import merge_outputs

    merged = merge_outputs(args.outputs, out=args.out)
    print(merged.get("run", merged)["report"])  # {datasets, run} layout (or an old flat output)
    print(f"wrote {args.out}")
    return 0


def _cmd_condor_cluster_script(args: argparse.Namespace) -> int:
    from hepml_coffea.batch.htcondor import htcondor_job_script

    print(htcondor_job_script(
        kind=args.kind, cores=args.cores, memory=args.memory, disk=args.disk, gpus=args.gpus,
        env_setup=args.env_setup or [], python=args.python, log_directory=args.log_directory,
    ))
    return 0


# --- batch clusters: `run --executor slurm/htcondor` options and `slurm` (issue 15, batch helper)
def _cmd_slurm_split(args: argparse.Namespace) -> int:
    from hepml_coffea.batch.slurm import submit_array, write_array_jobs

    paths = write_array_jobs(
        args.fileset, args.outdir, files_per_job=args.files_per_job, n_jobs=args.n_jobs, taggers=args.taggers,
        chunksize=args.chunksize, python=args.python, env_setup=args.env_setup or [],
        cpus_per_task=args.cpus_per_task, memory=args.memory, walltime=args.walltime, partition=args.partition,
        account=args.account, gpus=args.gpus, max_parallel=args.max_parallel, device=args.device,
        skip_bad_files=args.skip_bad_files, selection=_selection(args), backend=args.backend,
    )
    print(f"wrote {len(paths['jobs'])} task fileset(s) and the job array {paths['script']}")
    if args.submit:
        print(f"submitted array job {submit_array(paths['script'])}")
    else:
        print(f"submit with:  sbatch {paths['script']}")
    print(f"then merge:   hepml-coffea slurm merge {paths['script'].parent} --out merged.coffea")
    return 0


def _cmd_slurm_merge(args: argparse.Namespace) -> int:
    from hepml_coffea.batch.core import merge_job_dir
    from hepml_coffea.analysis.histograms import datasets_of

    merged = merge_job_dir(args.jobdir, out=args.out, allow_incomplete=args.allow_incomplete)
    meta = merged.get("run", merged)
    print(meta["report"])
    missing = meta.get("missing_jobs", [])
    for m in missing:
        print(f"  missing job {m['id']} ({m['state']}): log {m['log']}", file=sys.stderr)
    print(f"wrote {args.out} ({len(datasets_of(merged))} dataset(s))")
    return 0


def _cmd_slurm_cluster_script(args: argparse.Namespace) -> int:
    from hepml_coffea.batch.slurm import slurm_job_script

    print(slurm_job_script(
        kind=args.kind, cores=args.cores, memory=args.memory, walltime=args.walltime, partition=args.partition,
        account=args.account, gpus=args.gpus, env_setup=args.env_setup or [], python=args.python,
        log_directory=args.log_directory,
    ))
    return 0


def _add_split_options(p: Any, nodes: str, unit: str) -> None:
    """The options ``condor split`` and ``slurm split`` share: fileset, folder, grouping, taggers,
    run choices and the worker environment."""
    p.add_argument("fileset", help="fileset JSON")
    p.add_argument("--outdir", required=True)
    how = p.add_mutually_exclusive_group()
    how.add_argument("--files-per-job", type=int, default=1)
    how.add_argument("--n-jobs", type=int, default=None)
    p.add_argument("--taggers", nargs="+", default=None, help="shipped tagger names or artifact paths")
    p.add_argument("--chunksize", type=int, default=10000)
    p.add_argument("--device", default="auto")
    p.add_argument("--skip-bad-files", action="store_true")
    _add_run_choices(p)
    p.add_argument("--python", default=None, help=f"python on the {nodes} (default: hepml-coffea on PATH)")
    p.add_argument("--env-setup", action="append", default=None, metavar="LINE",
                   help=f"shell line run before the {unit} (repeatable), e.g. '. /path/venv/bin/activate'")


def _add_worker_job_options(p: Any) -> None:
    """``cluster-script``'s options of one Dask worker job, shared by HTCondor and Slurm."""
    p.add_argument("--kind", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--cores", type=int, default=1)
    p.add_argument("--memory", default="4GB")
    p.add_argument("--gpus", type=int, default=1)
    p.add_argument("--python", default=None)
    p.add_argument("--log-directory", default=None)
    p.add_argument("--env-setup", action="append", default=None, metavar="LINE")


def _scheduler_parser(sub: Any, name: str, what: str, split_help: str, nodes: str, unit: str) -> tuple[Any, Any]:
    """``hepml-coffea condor|slurm``: its sub-command parser and its ``split`` parser with the
    shared options (:func:`_add_split_options`)."""
    top = sub.add_parser(name, help=f"{what}, merge its outputs, show a Dask worker job")
    commands = top.add_subparsers(dest=f"{name}_command", required=True)
    split = commands.add_parser("split", help=split_help)
    _add_split_options(split, nodes, unit)
    return commands, split


def _add_condor_parser(sub: Any) -> None:
    csub, cs = _scheduler_parser(sub, "condor", "HTCondor: split a fileset into batch jobs",
                                 "write per-job filesets, run_job.sh and jobs.sub into OUTDIR", "worker nodes", "job")
    cs.add_argument("--transfer-taggers", action="store_true",
                    help="let HTCondor copy the artifact directories into each job")
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
    _add_worker_job_options(cc)
    cc.add_argument("--disk", default="4GB")
    cc.set_defaults(func=_cmd_condor_cluster_script)


def _add_slurm_parser(sub: Any) -> None:
    ssub, ss = _scheduler_parser(sub, "slurm", "Slurm: split a fileset into a job array",
                                 "write per-task filesets and a job array script (sbatch --array) into OUTDIR",
                                 "compute nodes", "task")
    ss.add_argument("--cpus-per-task", type=int, default=1)
    ss.add_argument("--memory", default="4GB")
    ss.add_argument("--walltime", default="01:00:00", help="HH:MM:SS or D-HH:MM:SS")
    ss.add_argument("--partition", default=None)
    ss.add_argument("--account", default=None)
    ss.add_argument("--gpus", type=int, default=0, help="GPUs per task (--gres=gpu:N)")
    ss.add_argument("--max-parallel", type=int, default=None, help="at most this many tasks at once (--array=..%%N)")
    ss.add_argument("--submit", action="store_true", help="also run sbatch")
    ss.set_defaults(func=_cmd_slurm_split)
    sm = ssub.add_parser("merge", help="merge the outputs of a job folder (slurm or condor split); "
                                       "refuses when a job has no output unless --allow-incomplete")
    sm.add_argument("jobdir")
    sm.add_argument("--out", required=True)
    sm.add_argument("--allow-incomplete", action="store_true",
                    help="merge the jobs that finished; the missing ones are listed in the output")
    sm.set_defaults(func=_cmd_slurm_merge)
    sc = ssub.add_parser("cluster-script", help="print the batch script of one Dask worker job")
    _add_worker_job_options(sc)
    sc.add_argument("--walltime", default="01:00:00")
    sc.add_argument("--partition", default=None)
    sc.add_argument("--account", default=None)
    sc.set_defaults(func=_cmd_slurm_cluster_script)


