"""Run the TaggerProcessor on Dask workers started as HTCondor jobs.

Run it on the submit (login) node, in the same environment the workers use:

    python condor/dask_cluster.py --fileset condor/fileset_example.json --jobs 10 \
        --env-setup ". /shared/hepml-venv/bin/activate" --out out/condor.coffea

GPU workers (one GPU per job, ``dask cuda worker``; needs dask-cuda on the workers):

    python condor/dask_cluster.py ... --kind gpu --memory 16GB

Dashboard (bound to localhost on the submit node): from your laptop
``ssh -L 8787:localhost:8787 user@submit-node``, then open http://localhost:8787.
Add ``--tls`` to encrypt scheduler/worker/client traffic with throw-away certificates.

Input files and tagger artifacts must be readable from the worker nodes (shared file
system or ``root://`` URLs): each worker opens the files of its chunks itself.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fileset", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--jobs", type=int, default=4, help="HTCondor jobs (workers for CPU, GPUs for GPU)")
    ap.add_argument("--kind", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--cores", type=int, default=1)
    ap.add_argument("--memory", default="4GB")
    ap.add_argument("--disk", default="4GB")
    ap.add_argument("--python", default=None, help="python on the worker nodes (default: this one)")
    ap.add_argument("--env-setup", action="append", default=[], metavar="LINE",
                    help="POSIX-sh line run before the worker starts (repeatable)")
    ap.add_argument("--taggers", nargs="+", default=None)
    ap.add_argument("--chunksize", type=int, default=10000)
    ap.add_argument("--log-directory", default="dask-condor-logs")
    ap.add_argument("--dashboard-address", default="127.0.0.1:8787")
    ap.add_argument("--interface", default=None, help="network interface the scheduler listens on (e.g. eth0)")
    ap.add_argument("--tls", action="store_true", help="TLS with temporary certificates (Security.temporary())")
    ap.add_argument("--shared-dir", default=".", help="shared folder, private to you, for the --tls certificates")
    ap.add_argument("--wait", type=float, default=600, help="seconds to wait for the first worker")
    args = ap.parse_args()

    from distributed import Client

    from hepml_coffea.batch.htcondor import htcondor_cluster
    from hepml_coffea.batch.run import run_fileset

    extra = {}
    if args.tls:
        from distributed.security import Security

        extra = {"protocol": "tls", "security": Security.temporary(), "shared_temp_directory": args.shared_dir}
    sched = {"interface": args.interface} if args.interface else {}
    cluster = htcondor_cluster(
        kind=args.kind, cores=args.cores, memory=args.memory, disk=args.disk, env_setup=args.env_setup,
        python=args.python, log_directory=args.log_directory, dashboard_address=args.dashboard_address,
        scheduler_options=sched, **extra,
    )
    print(cluster.job_script(), flush=True)
    try:
        cluster.scale(jobs=args.jobs)  # condor_submit happens here
        client = Client(cluster, security=cluster.security)
        try:
            print(f"scheduler {cluster.scheduler_address}; dashboard {client.dashboard_link}", flush=True)
            t0 = time.perf_counter()
            client.wait_for_workers(1, timeout=args.wait)
            print(f"first worker after {time.perf_counter() - t0:.0f} s", flush=True)
            run_fileset(args.fileset, out=args.out, executor="dask-cuda" if args.kind == "gpu" else "dask",
                        client=client, chunksize=args.chunksize, taggers=args.taggers)
        finally:
            client.close()
    finally:
        cluster.close()  # condor_rm of the worker jobs


if __name__ == "__main__":
    main()
