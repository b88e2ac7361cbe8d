"""Run the TaggerProcessor on Dask workers started as HTCondor or Slurm jobs.

Run it on the submit / login node, in the same environment the workers use (a virtual
environment on a shared file system):

    python condor/dask_cluster.py --fileset condor/fileset_example.json --jobs 10 \
        --env-setup ". /shared/hepml-venv/bin/activate" --out out/condor.coffea
    python condor/dask_cluster.py --scheduler slurm --fileset condor/fileset_example.json --jobs 10 \
        --partition short --env-setup ". /shared/hepml-venv/bin/activate" --out out/slurm.coffea

GPU workers (one GPU per job: ``request_gpus`` / ``--gres=gpu:1``, ``dask cuda worker``; needs
dask-cuda on the worker nodes): add ``--kind gpu --memory 16GB`` (and ``--partition gpu``).

The same as ``hepml-coffea run --executor htcondor|slurm --workers 10 ...``, plus the worker
job script printed first and a wait for the first worker. Dashboard (bound to localhost on the
submit node): ``ssh -L 8787:localhost:8787 user@submit-node``, then open
http://localhost:8787/status and http://localhost:8787/individual-fine-performance-metrics
(time per processor stage). Add ``--tls`` to encrypt scheduler/worker/client traffic with
throw-away certificates.

Input files and tagger artifacts must be readable from the worker nodes (shared file
system or ``root://`` URLs): each worker opens the files of its chunks itself.
"""

from __future__ import annotations

import argparse
import logging
import time

#: options only one scheduler has (the others are common)
ONLY = {"htcondor": ("disk",), "slurm": ("walltime", "partition", "account")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scheduler", choices=["htcondor", "slurm"], default="htcondor")
    ap.add_argument("--fileset", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--jobs", type=int, default=4, help="batch jobs (one Dask worker per CPU job / per GPU)")
    ap.add_argument("--kind", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--cores", type=int, default=1)
    ap.add_argument("--memory", default="4GB")
    ap.add_argument("--disk", default=None, help="HTCondor: request_disk (default 4GB)")
    ap.add_argument("--walltime", default=None, help="Slurm: -t (default 01:00:00)")
    ap.add_argument("--partition", default=None, help="Slurm: -p")
    ap.add_argument("--account", default=None, help="Slurm: -A")
    ap.add_argument("--python", default=None, help="python on the worker nodes (default: this one)")
    ap.add_argument("--env-setup", action="append", default=[], metavar="LINE",
                    help="POSIX-sh line run in the job before the worker starts (repeatable)")
    ap.add_argument("--taggers", nargs="+", default=None)
    ap.add_argument("--chunksize", type=int, default=10000)
    ap.add_argument("--log-directory", default=None, help="worker job logs (default dask-<scheduler>-logs)")
    ap.add_argument("--dashboard-address", default="127.0.0.1:8787")
    ap.add_argument("--interface", default=None, help="network interface the scheduler listens on (e.g. eth0, ib0)")
    ap.add_argument("--tls", action="store_true", help="TLS with temporary certificates (Security.temporary())")
    ap.add_argument("--shared-dir", default=".", help="shared folder, private to you, for the --tls certificates")
    ap.add_argument("--wait", type=float, default=600, help="seconds to wait for the first worker")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the run report and notices
    other = "slurm" if args.scheduler == "htcondor" else "htcondor"
    wrong = [k for k in ONLY[other] if getattr(args, k) is not None]
    if wrong:
        ap.error(f"--{wrong[0]} is an option of --scheduler {other}")

    from hepml_coffea.analysis.processor import TaggerProcessor
    from hepml_coffea.batch.clusters import make_cluster, wait_for_workers
    from hepml_coffea.batch.run import run_fileset
    from hepml_coffea.config import RunConfig

    options = {k: getattr(args, k) for k in ONLY[args.scheduler] if getattr(args, k) is not None}
    if args.tls:
        from distributed.security import Security

        options.update(protocol="tls", security=Security.temporary(), shared_temp_directory=args.shared_dir)
    cluster, client = make_cluster(
        args.scheduler, workers=args.jobs, dashboard_address=args.dashboard_address, kind=args.kind,
        cores=args.cores, memory=args.memory, env_setup=args.env_setup, python=args.python,
        log_directory=args.log_directory or f"dask-{args.scheduler}-logs",
        scheduler_options={"interface": args.interface} if args.interface else {}, **options,
    )  # the jobs are submitted here (condor_submit / sbatch)
    try:
        print(cluster.job_script(), flush=True)
        print(f"scheduler {cluster.scheduler_address}; dashboard {client.dashboard_link}", flush=True)
        t0 = time.perf_counter()
        wait_for_workers(client, 1, timeout=args.wait, cluster=cluster)
        print(f"first worker after {time.perf_counter() - t0:.0f} s", flush=True)
        run_fileset(args.fileset, TaggerProcessor(taggers=args.taggers),
                    config=RunConfig(executor=args.scheduler, chunksize=args.chunksize), client=client, out=args.out)
    finally:
        client.close()
        cluster.close()  # condor_rm / scancel of the worker jobs


if __name__ == "__main__":
    main()
