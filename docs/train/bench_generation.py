"""Generation speed before/after, side by side in one run (same seeds, same machine).

    nice -n 19 python docs/train/bench_generation.py --before f302d42 --events 1000 --seed 901

For each process (ttbar, qcd) and each version it runs ``generate(process, events, seed)`` in a
fresh subprocess (``--before``: the package as of that git revision, extracted with
``git archive``; ``after``: this working tree), alternating before/after, and reports the
wall and CPU time of ``generate`` (Pythia init, generation, writing; imports excluded; CPU
time is the figure to compare on a shared machine), events/s,
the in-window training jets (:func:`hepml_coffea.samples.count.count_window_jets`) and
in-window jets/s, and whether the two files hold the same events (every branch the before
file has compared bit for bit). Prints a markdown table and writes ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_RUN = """
import json, sys, time
from hepml_coffea.samples import generate
t0, c0 = time.perf_counter(), time.process_time()
generate(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
print(json.dumps({"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}))
"""


def _run(process: str, events: int, seed: int, out: Path, pythonpath: str | None) -> tuple[float, float]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    res = subprocess.run([sys.executable, "-c", _RUN, process, str(events), str(seed), str(out)],
                         capture_output=True, text=True, check=True, env=env, cwd=out.parent)
    r = json.loads(res.stdout.strip().splitlines()[-1])
    return float(r["seconds"]), float(r["cpu_seconds"])


def _same_events(before: Path, after: Path) -> bool:
    import awkward as ak
    import uproot

    with uproot.open(before) as fb, uproot.open(after) as fa:
        tb, ta = fb["Events"], fa["Events"]
        return all(ak.array_equal(tb[k].array(), ta[k].array()) for k in tb.keys())  # noqa: SIM118


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default="f302d42", help="git revision of the 'before' package")
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=901)
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()
    from hepml_coffea.samples.count import count_window_jets

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "before"
        base.mkdir()
        archive = subprocess.run(["git", "archive", args.before, "hepml_coffea"], cwd=ROOT, capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        for process in ("ttbar", "qcd"):
            files = {}
            for version, path in (("before", str(base)), ("after", None)):
                out = Path(tmp) / f"{version}_{process}.root"
                seconds, cpu = _run(process, args.events, args.seed, out, path)
                jets = count_window_jets(out, process)
                files[version] = out
                rows.append({"process": process, "version": version, "events": args.events, "seed": args.seed,
                             "seconds": round(seconds, 2), "events_per_s": round(args.events / seconds, 1),
                             "cpu_seconds": round(cpu, 2), "events_per_cpu_s": round(args.events / cpu, 1),
                             "window_jets": jets, "window_jets_per_s": round(jets / seconds, 1),
                             "bytes": out.stat().st_size})
            same = _same_events(files["before"], files["after"])
            for r in rows[-2:]:
                r["same_events"] = same
    print(f"| process | version | events | wall s | events/s | CPU s | events/CPU-s | in-window jets | jets/s | "
          f"jets/CPU-s | same events |\n|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['process']} | {r['version']} | {r['events']} | {r['seconds']} | {r['events_per_s']} | "
              f"{r['cpu_seconds']} | {r['events_per_cpu_s']} | {r['window_jets']} | {r['window_jets_per_s']} | "
              f"{round(r['window_jets'] / r['cpu_seconds'], 1)} | {r['same_events']} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"before": args.before, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
