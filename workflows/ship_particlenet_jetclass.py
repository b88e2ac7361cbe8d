"""Build the shipped ``particlenet-jetclass`` tagger from the JetClass ParticleNet (MIT).

    python workflows/ship_particlenet_jetclass.py --src ../shared/models/jetclass-particlenet-kin \\
        --files data/evalset/ttbar_3001.root data/evalset/qcd_4001.root

1. ``import_weaver`` on the authors' ONNX graph with its original data config
   (``JetClass_kin.yaml``: padding modes and formulas), the JetClass branch map, the score
   ``Tbqq / (Tbqq + QCD)``, the MIT licence and the provenance, and the original state dict
   (``ParticleNet_kin.pt``) loaded into the registry's ``ParticleNet`` (EdgeConv
   (16,(64,64,64)), (16,(128,128,128)), (16,(256,256,256)), FC (256, 0.1), no fusion, input
   batch norm) and checked against the graph to 1e-5;
2. the AOTInductor package of that network (top-k kNN, freezing), checked against torch eager
   on real jets;
3. the CPU runtime chosen by measurement on ``--jets`` real selected jets at one thread
   (ONNX Runtime on the authors' graph, torch eager, AOTInductor).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

PROVENANCE = """# particlenet-jetclass: provenance

The full ParticleNet (H. Qu, L. Gouskos, arXiv:1902.08570) trained by the authors of the
Particle Transformer paper (H. Qu, C. Li, S. Qian, arXiv:2202.03772, ICML 2022) on the JetClass
data set (100M jets, 10 classes, DOI 10.5281/zenodo.6619768), kinematic inputs only.

- Source: https://github.com/jet-universe/particle_transformer at commit
  2925bdb249e8ef78560cc2b9b651eda3615da8c7: weights `models/ParticleNet_kin.pt` (sha256
  73aff244c657db0f7b62abe9ad13ec007c17cf10057ff1ad54c320f3bd4a4f26), network
  `networks/example_ParticleNet.py`, data config `data/JetClass/JetClass_kin.yaml`.
- `model.onnx`: weaver-core 0.5.3 `--export-onnx` (softmax over the 10 classes, opset 15,
  torch 2.13.0+cpu), sha256 088144141f398cbcac4226ab019d72f71ed0ba7385c3f70f86dba2f9293d8096.
- `weights.safetensors`: the same state dict, keys without weaver's `mod.` prefix, loaded into
  hepml_coffea's ParticleNet and checked against `model.onnx` (model.yaml `weaver.torch_weights`).
- Licence: MIT, "Copyright (c) 2022 Huilin Qu, Congqiao Li, Sitian Qian" (`LICENSE`); the
  ParticleNet implementation in weaver-core is MIT, "Copyright (c) 2020 Huilin Qu".
- Domain: JetClass is MadGraph5 + Pythia 8 + Delphes (CMS card), AK8 jets with
  500 < pT < 1000 GeV and |eta| < 2. On PFNano jets the inputs are built from PUPPI-weighted
  PF candidates (hepml_coffea/weaver/branch_maps/jetclass.yaml): a domain shift from Delphes
  E-flow objects, and more so outside the training window.
- Top score: P(Tbqq) / (P(Tbqq) + P(QCD)).
"""

KWARGS = {"input_dims": 7, "conv_params": [[16, [64, 64, 64]], [16, [128, 128, 128]], [16, [256, 256, 256]]],
          "fc_params": [[256, 0.1]], "use_fusion": False, "use_fts_bn": True, "num_classes": 10}


def main(argv: list[str] | None = None) -> int:
    import torch

    from hepml_coffea.artifacts import load_artifact
    from hepml_coffea.inference.tuning import choose_backend
    from hepml_coffea.representations import build
    from hepml_coffea.weaver import import_weaver

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", default="../shared/models/jetclass-particlenet-kin")
    ap.add_argument("--out", default="hepml_coffea/artifacts_data/particlenet-jetclass")
    ap.add_argument("--files", nargs="+", required=True, help="files with selected fat jets, for timing / checks")
    ap.add_argument("--jets", type=int, default=600)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    src = Path(args.src)
    out = Path(args.out)
    tmp = out.with_name(out.name + ".new")
    shutil.rmtree(tmp, ignore_errors=True)
    import_weaver(src / "model.onnx", data_config=src / "JetClass_kin.yaml", name="particlenet-jetclass", out=tmp,
                  score="Tbqq / (Tbqq + QCD)", branch_map="jetclass", license_file=src / "LICENSE",
                  provenance=PROVENANCE, weights=src / "ParticleNet_kin.pt", architecture="ParticleNet",
                  model_kwargs=KWARGS,
                  domain={"sample": "JetClass (MadGraph5 + Pythia 8 + Delphes CMS card)", "pt": [500.0, 1000.0],
                          "abs_eta_max": 2.0})
    torch.set_num_threads(1)
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from choose_backends import selected_jets

    art = load_artifact(tmp)
    cands, jets = selected_jets(args.files, args.jets, art.spec.required_cand_fields(), art.spec.required_jet_fields())
    built = build(cands, jets, art.spec)
    x = {k: np.asarray(built[k]) for k in art.input_names}
    chosen = choose_backend(tmp, inputs=x, repeats=args.repeats, backends=("onnxruntime", "aoti", "torch"))
    rec = load_artifact(tmp).meta["cpu_backend"]
    rates = ", ".join(f"{b} {r['jets_per_s']:,.1f}" if "jets_per_s" in r else f"{b} ({r['error'][:80]})"
                      for b, r in rec["results"].items())
    print(f"particlenet-jetclass: {len(jets)} jets; chose {chosen} (jets/s at 1 thread: {rates})")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
