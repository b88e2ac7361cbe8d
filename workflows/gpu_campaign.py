"""GPU campaign (issue 12): generate, train, evaluate and benchmark in one command.

On the GPU host (device tool; install line and carry list in BENCHMARKS.md, section
"GPU campaign (issue 12)")::

    python workflows/gpu_campaign.py --out $OUT --budget-s 540

On any CPU machine, the same path end to end with tiny sizes (the test suite runs it)::

    python workflows/gpu_campaign.py --out /tmp/campaign_smoke --smoke

Afterwards, on the CPU machine, plots, tables and artifact PNGs from what came back::

    python workflows/gpu_campaign.py --finish RESULTS_DIR --out benchmarks/results/gpu_campaign

Steps, in time order (``--budget-s`` B sets every deadline; each step is guarded: a
failure is recorded with its traceback and the rest goes on):

1. ``environment``: torch + CUDA (+ a bf16 matrix product), coffea, dask, dask-cuda,
   fastjet, pythia8mc, the project's modules; stops within seconds with the list of what
   is missing (exit 2). With ``--smoke`` CUDA and dask-cuda are not required.
2. ``generate``: a pool of ``--workers`` processes (default: every core) generates
   ttbar + QCD parts with fresh seeds (:data:`SEEDS`), each task a ttbar and a QCD file
   read back at once into selected, labelled jets; training parts first until
   ``--train-jets`` top and QCD jets (or 0.34 B), then evaluation parts until
   ``--eval-qcd-jets`` QCD and ``--eval-top-jets`` top jets (or 0.70 B), streaming
   while the GPU trains.
3. ``model_stage`` (while the training parts generate): jets/s of every tagger
   (shipped ones + full-size ParticleNet with random weights) through
   ``Tagger.predict`` in fp32, bf16 autocast and ``torch.compile`` at batch 1k/4k/16k.
4. ``train_<model>``: full ParticleNet, then PFN, ParticleNet-Lite, LSTM, CNN, each
   with its share of the training window, bf16 autocast, data held on the GPU,
   through :func:`hepml_coffea.training.train.train_on_dataset` (complete artifacts).
5. ``evaluate``: every new and shipped artifact on the evaluation set: AUC (DeLong
   error), 1/eB at eS = 30 % / 50 % with Clopper-Pearson intervals.
6. ``cpu_vs_gpu``: fp32 scores of the same jets on CPU and GPU (TF32 off): max |diff|.
7. ``processor``: the TaggerProcessor with the new taggers over the evaluation files on
   a dask-cuda ``LocalCUDACluster`` (one worker; a CPU LocalCluster with ``--smoke``),
   cold and warm, with the share of each stage in Dask's fine performance metrics.

Everything lands under ``--out`` as it finishes, in at most 8 files (the device tool
brings back 8): ``results.json`` (rewritten atomically after every step),
``campaign.log``, ``artifacts.tar.gz`` (the new artifacts), ``scores.npz`` (evaluation
and test-split scores for plots), ``env.txt``. Generated files and artifact folders live
under ``--work`` (default a temporary folder).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT, ROOT / "workflows"):  # run as a script from anywhere: the package and the steps (gpu_steps/)
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from gpu_steps.common import MAX_OUT_FILES, MODES, SEEDS, Campaign, EnvironmentProblem, Plan  # noqa: E402, F401
from gpu_steps.environment import check_environment, host_report  # noqa: E402
from gpu_steps.evaluation import campaign_report, cpu_vs_gpu, evaluate  # noqa: E402, F401
from gpu_steps.finish import finish  # noqa: E402
from gpu_steps.generation import Generation  # noqa: E402
from gpu_steps.model_stage import free_gpu, model_stage, random_particlenet  # noqa: E402
from gpu_steps.processor import processor_run, stage_shares  # noqa: E402, F401
from gpu_steps.training import train_models  # noqa: E402


# --------------------------------------------------------------------------- the campaign
def run_campaign(args: argparse.Namespace, argv: list[str]) -> int:
    """All steps in order; returns the exit code (2: environment unusable)."""
    out = Path(args.out)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="hepml_campaign_"))
    plan = Plan.make(args.budget_s, args.smoke, args.workers, args.train_jets, args.eval_qcd_jets, args.eval_top_jets)
    # the generation processes use one thread each; set before they are spawned
    camp = Campaign(out, work, plan, argv)
    camp.log(f"campaign: budget {plan.budget_s:.0f} s, smoke={plan.smoke}, {plan.workers} generation processes, "
             f"out {out}, work {work}")
    env: dict[str, Any] = {}
    with camp.step("environment") as rec:
        env = check_environment(plan.smoke, work)
        rec.update(env)
    if camp.results["steps"]["environment"]["status"] != "ok":
        camp.log("environment unusable; nothing else was run: " + camp.results["steps"]["environment"]["error"])
        camp.close()
        return 2
    host_report(out / "env.txt", pip=not plan.smoke)
    import torch

    device = "cuda" if torch.cuda.is_available() and not plan.smoke else "cpu"
    plots = bool(env.get("optional", {}).get("mplhep"))
    gen = Generation(camp)
    scores: dict[str, np.ndarray] = {}
    new: list[str] = []
    try:
        with camp.step("model_stage") as rec:
            from hepml_coffea.artifacts import shipped_taggers

            shipped = shipped_taggers()
            bench = {"particlenet": random_particlenet(work, plan.length)}
            bench.update({k: Path(shipped[k]) for k in ("pfn", "cnn", "lstm", "particlenet-lite") if k in shipped})
            piece = gen.first_piece(timeout_s=max(5.0, camp.left(plan.train_start_frac)))
            if piece is None:
                msg = f"no generated jets for the benchmark (generation errors: {gen.errors[:2]})"
                raise RuntimeError(msg)
            rec.update(model_stage(camp, bench, piece, device, camp.at(plan.train_start_frac)))
        free_gpu()
        with camp.step("generate_train") as rec:
            gen.wait("train", camp.at(plan.train_start_frac))
            rec.update(gen.summary()["sets"]["train"])
        ds = None
        with camp.step("train") as rec:
            ds = gen.dataset("train")
            rec.update({"top_jets": int((ds.labels == 1).sum()), "qcd_jets": int((ds.labels == 0).sum()),
                        "plots_in_artifacts": plots})
        if ds is not None:
            new = train_models(camp, ds, device, plots, scores)
            camp.record("train", {"artifacts": new})
        del ds
        with camp.step("generate_eval") as rec:
            gen.wait("eval", camp.at(plan.eval_gen_end_frac))
            gen.shutdown()
            rec.update(gen.summary())
        eval_ds = None
        with camp.step("evaluate") as rec:
            eval_ds = gen.dataset("eval")
            from hepml_coffea.artifacts import shipped_taggers

            taggers = {f"{k} (new)": work / "artifacts" / k for k in new}
            taggers.update({f"{k} (shipped)": Path(v) for k, v in shipped_taggers().items()})
            rec.update(evaluate(camp, eval_ds, taggers, device, scores))
        with camp.step("cpu_vs_gpu") as rec:
            if eval_ds is None:
                raise RuntimeError("no evaluation set")
            taggers = {k: work / "artifacts" / k for k in new}
            rec.update(cpu_vs_gpu(camp, eval_ds, taggers, device))
        with camp.step("processor") as rec:
            left = camp.left(plan.processor_end_frac)
            if not new:
                raise RuntimeError("no new artifacts to run the processor with")
            if left < (5 if plan.smoke else 25):
                rec.update({"status": "skipped", "reason": f"only {left:.0f} s left before its deadline"})
            else:
                from hepml_coffea.inference.engine import clear_cache

                clear_cache()  # the main process's models: the worker loads its own
                free_gpu()
                rec.update(processor_run(camp, gen.sets["eval"].files, [work / "artifacts" / k for k in new],
                                         camp.at(plan.processor_end_frac)))
    finally:
        gen.shutdown()
        camp.results["campaign"]["new_artifacts"] = new
        camp.close()
    files = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    if len(files) > MAX_OUT_FILES:
        print(f"warning: {len(files)} files in {out}; the device tool brings back {MAX_OUT_FILES}", file=sys.stderr)
    failed = [k for k, v in camp.results["steps"].items() if v.get("status") == "failed"]
    print(f"campaign done in {camp.elapsed():.0f} s; files: {files}; failed steps: {failed or 'none'}", flush=True)
    if not args.keep_work and not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


# --------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the package logs its reports
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="results folder (on the device: $OUT)")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="seconds for the whole campaign; every step's deadline scales with it "
                         "(default 540; 600 with --smoke, whose tiny sizes end long before)")
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny sizes, one epoch: the same path end to end")
    ap.add_argument("--work", help="folder for generated files and artifacts (default: a temporary one, removed)")
    ap.add_argument("--keep-work", action="store_true", help="keep the temporary work folder")
    ap.add_argument("--workers", type=int, default=None, help="generation processes (default: every core)")
    ap.add_argument("--train-jets", type=int, default=None, help="training jets per class to aim for (50000)")
    ap.add_argument("--eval-qcd-jets", type=int, default=None, help="evaluation QCD jets to aim for (50000)")
    ap.add_argument("--eval-top-jets", type=int, default=None, help="evaluation top jets to aim for (20000)")
    ap.add_argument("--finish", metavar="RESULTS_DIR",
                    help="CPU afterwards: plots, artifact PNGs and campaign.md from a campaign's files into --out")
    args = ap.parse_args(argv)
    if args.finish:
        if not args.out:
            ap.error("--finish needs --out (where the plots and unpacked artifacts go)")
        for p in finish(Path(args.finish), Path(args.out)):
            print(p)
        return 0
    if not args.out:
        ap.error("--out is required")
    if args.budget_s is None:
        args.budget_s = 600.0 if args.smoke else 540.0
    if args.budget_s <= 0:
        ap.error(f"--budget-s must be > 0, got {args.budget_s}")
    return run_campaign(args, argv)


if __name__ == "__main__":
    sys.exit(main())
