"""Gather the learning-curve points of TAGGERS.md into one folder (``data/curve``).

    python workflows/curve_points.py --out data/curve
    hepml-coffea evaluate --data data/evalset --out docs/eval --cache data/eval_cache \\
        --update-markdown TAGGERS.md --curve data/curve

A point is a tagger artifact trained from scratch on fewer jets than the shipped one, with the
shipped architecture and recipe. The shipped taggers are points themselves (their full training
set); the others are earlier shipped artifacts (taken from git, same recipe, fewer jets) and
smaller trainings of the ablations (``workflows/physics_ablation.py``: copied from their output
folder if it exists, otherwise the command that makes them is printed and the point is left out).
Every point is renamed to its folder name (tagger names must be unique in one evaluation).
"""

from __future__ import annotations

import argparse
import io
import logging
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

log = logging.getLogger("hepml_coffea.workflows.curve_points")

#: point -> ("git", commit, path in the repository) | ("ablation", artifact folder, command making it)
POINTS: dict[str, tuple[str, str, str]] = {
    "pfn-plain-3k": ("ablation", "data/ablation_pilot/pfn-plain-3k",
                     "python workflows/physics_ablation.py --data data/train_ft --models pfn --variants plain "
                     "--caps 0 --epochs 30 --threads 1 --out data/ablation_pilot"),
    "pfn-plain-20k": ("ablation", "data/ablation_20k/pfn-plain-20k",
                      "python workflows/physics_ablation.py --data data/train_big --files 7 --models pfn "
                      "--variants plain --caps 20000 --epochs 30 --threads 1 --out data/ablation_20k"),
    "pfn-80k": ("git", "b01f928", "hepml_coffea/artifacts_data/pfn"),
    "lstm-embed-meanmax-20k": ("ablation", "data/ablation_lstm_embed_meanmax/lstm-embed-meanmax-20k",
                               "python workflows/physics_ablation.py --data data/train_big --files 7 --models lstm "
                               "--variants embed+meanmax --caps 20000 --epochs 12 --threads 1 "
                               "--out data/ablation_lstm_embed_meanmax"),
    "cnn-46k": ("git", "fe12c91^", "hepml_coffea/artifacts_data/cnn"),
    "particlenet-lite-46k": ("git", "e3397ad", "hepml_coffea/artifacts_data/particlenet-lite"),
    # trained on the whole set but not shipped (TAGGERS.md: its AOTInductor package failed the
    # exactness check, ONNX Runtime would cost 0.70x the speed for 1.06x the rejection)
    "particlenet-lite-243k": ("ablation", "data/candidates_s8/particlenet-lite",
                              "python workflows/train_shipped.py --data data/train_big --models particlenet-lite "
                              "--threads 1 --time-budget 2400 --out data/candidates_s8"),
}


def _from_git(commit: str, path: str, dst: Path) -> None:
    blob = subprocess.run(["git", "archive", commit, path], check=True, capture_output=True).stdout
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(tmp, filter="data")
        shutil.copytree(Path(tmp) / path, dst)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="data/curve")
    ap.add_argument("--force", action="store_true", help="remake points that exist")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from hepml_coffea.artifacts import update_artifact

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, (kind, source, extra) in POINTS.items():
        dst = out / name
        if dst.exists() and not args.force:
            log.info("%s: present", name)
            continue
        if dst.exists():
            shutil.rmtree(dst)
        if kind == "git":
            _from_git(source, extra, dst)
        elif (Path(source) / "manifest.json").exists():
            shutil.copytree(source, dst)
        else:
            log.warning("%s: %s missing; make it with: %s", name, source, extra)
            continue
        update_artifact(dst, meta={"name": name})
        log.info("%s: from %s %s", name, kind, source)


if __name__ == "__main__":
    main()
