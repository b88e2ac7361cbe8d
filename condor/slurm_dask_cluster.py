"""Run the TaggerProcessor on Dask workers started as Slurm jobs.

Run it on the login node, in the same environment the workers use (a virtual
environment on a shared file system):

    python condor/slurm_dask_cluster.py --fileset condor/fileset_example.json --jobs 10 \
        --partition short --env-setup ". /shared/hepml-venv/bin/activate" --out out/slurm.coffea

GPU workers (``--gres=gpu:1`` per job, ``dask cuda worker``; needs dask-cuda on the nodes):

    python condor/slurm_dask_cluster.py ... --kind gpu --partition gpu --memory 16GB

The same as ``hepml-coffea run --executor slurm --workers 10 --partition short ...``,
plus the worker batch script printed first and a wait for the first worker.
Dashboard (bound to localhost on the login node): ``ssh -L 8787:localhost:8787
user@login-node``, then open http://localhost:8787/status and
http://localhost:8787/individual-fine-performance-metrics (time per processor stage).
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fileset", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--jobs", type=int, default=4, help="Slurm jobs (one Dask worker per CPU job / per GPU)")
    ap.add_argument("--kind", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--cores", type=int, default=1)
    ap.add_argument("--memory", default="4GB")
    ap.add_argument("--walltime", default="01:00:00")
    ap.add_argument("--partition", default=None)
    ap.add_argument("--account", default=None)
    ap.add_argument("--python", default=None, help="python on the compute nodes (default: this one)")
    ap.add_argument("--env-setup", action="append", default=[], metavar="LINE",
                    help="shell line run in the job before the worker starts (repeatable)")
    ap.add_argument("--taggers", nargs="+", default=None)
    ap.add_argument("--chunksize", type=int, default=10000)
    ap.add_argument("--log-directory", default="dask-slurm-logs")
    ap.add_argument("--dashboard-address", default="127.0.0.1:8787")
    ap.add_argument("--interface", default=None, help="network interface the scheduler listens on (e.g. ib0)")
    ap.add_argument("--wait", type=float, default=600, help="seconds to wait for the first worker")
    args = ap.parse_args()

    from hepml_coffea.batch.clusters import make_cluster, wait_for_workers
    from hepml_coffea.config import RunConfig
    from hepml_coffea.analysis.processor import TaggerProcessor
    from hepml_coffea.batch.run import run_fileset

    cluster, client = make_cluster(
        "slurm", workers=args.jobs, dashboard_address=args.dashboard_address, kind=args.kind, cores=args.cores,
        memory=args.memory, walltime=args.walltime, partition=args.partition, account=args.account,
        env_setup=args.env_setup, python=args.python, log_directory=args.log_directory,
        scheduler_options={"interface": args.interface} if args.interface else {},
    )
    try:
        print(cluster.job_script(), flush=True)
        print(f"scheduler {cluster.scheduler_address}; dashboard {client.dashboard_link}", flush=True)
        t0 = time.perf_counter()
        wait_for_workers(client, 1, timeout=args.wait, cluster=cluster)
        print(f"first worker after {time.perf_counter() - t0:.0f} s", flush=True)
        run_fileset(args.fileset, TaggerProcessor(taggers=args.taggers),
                    config=RunConfig(executor="slurm", chunksize=args.chunksize), client=client, out=args.out)
    finally:
        client.close()
        cluster.close()  # scancel of the worker jobs


if __name__ == "__main__":
    main()
