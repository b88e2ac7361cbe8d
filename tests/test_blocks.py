"""Named weaver-style input blocks (hepml_coffea/representations/blocks.py, spec.BlockSpec) and
the constituent extras they read (PUPPI weights, association-row fields, secondary vertices)."""

from __future__ import annotations

import logging
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from hepml_coffea.data.constituents import MissingBranchError, fatjet_constituents
from hepml_coffea.data.io import read_arrays
from hepml_coffea.representations import BlockSpec, InputSpec, VarSpec, build_blocks

SAMPLES = Path(__file__).parent / "samples"


def _cands() -> tuple[ak.Array, ak.Array]:
    cands = ak.Array([
        [{"pt": 10.0, "eta": 0.1, "phi": 0.0, "w": 1.0}, {"pt": 30.0, "eta": 0.2, "phi": 0.1, "w": 0.5},
         {"pt": 20.0, "eta": 0.3, "phi": 0.2, "w": 1.0}],
        [{"pt": 5.0, "eta": -0.1, "phi": 1.0, "w": 1.0}],
        [],
    ])
    jets = ak.Array([{"pt": 60.0, "eta": 0.2, "phi": 0.1}] * 3)
    return cands, jets


def test_blocks_pin_order_transform_and_both_padding_modes() -> None:
    """Hand-made jets: order by the spec's sort key, weaver's transform (clip after scaling),
    wrap padding repeats the transformed entries, constant padding writes pad_value."""
    cands, jets = _cands()
    spec = InputSpec(kind="blocks", features=[], sort_by="cand.w * pt", mask_block="m", blocks=[
        BlockSpec("x", "pf", 5, "wrap", [VarSpec("cand.pt", center=10.0, scale=0.1, clip_min=-5, clip_max=1.5)]),
        BlockSpec("c", "pf", 4, "constant", [VarSpec("cand.pt", pad_value=-1.0)]),
        BlockSpec("m", "pf", 4, "constant", [VarSpec("ones_like(pt)")]),
    ])
    out = build_blocks(cands, jets, spec)
    # jet 0 ordered by w*pt: 20 (w 1), 15 (30 x 0.5), 10 -> pt 20, 30, 10
    np.testing.assert_allclose(out["x"][0, 0], [1.0, 1.5, 0.0, 1.0, 1.5])  # (pt-10)*0.1, clipped at 1.5, wrapped
    np.testing.assert_allclose(out["x"][1, 0], [-0.5] * 5)  # one entry repeated
    np.testing.assert_allclose(out["x"][2, 0], [0.0] * 5)  # no entries: pad_value
    np.testing.assert_allclose(out["c"][0, 0], [20.0, 30.0, 10.0, -1.0])
    np.testing.assert_array_equal(out["m"][:, 0], [[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    assert out["lengths"].tolist() == [3, 1, 0]


def test_nan_to_num_is_weavers_last_step() -> None:
    cands, jets = _cands()
    b = BlockSpec("x", "pf", 3, "constant", [VarSpec("pt / (eta - eta)")], nan_to_num=True)  # 0/0... and x/0
    spec = InputSpec(kind="blocks", features=[], blocks=[b])
    out = build_blocks(cands, jets, spec)["x"]
    assert np.isfinite(out).all() and out[0, 0, 0] == np.finfo(np.float32).max


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"blocks": []}, "needs at least one block"),
    ({"blocks": [BlockSpec("a", "pf", 2, "constant", [VarSpec("cand.pt")])] * 2}, "must be unique"),
    ({"blocks": [BlockSpec("a", "sv", 2, "constant", [VarSpec("cand.pt")])], "mask_block": "a"}, "must name a 'pf' block"),
    ({"blocks": [BlockSpec("a", "pf", 2, "constant", [VarSpec("cand.pt")])], "sort_by": "ptt"}, "unknown feature"),
])
def test_bad_blocks_specs(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        InputSpec(kind="blocks", features=[], **kwargs)


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"collection": "jets"}, "unknown collection 'jets'"),
    ({"pad_mode": "mirror"}, "unknown pad_mode 'mirror'"),
    ({"length": 0}, "positive integer"),
    ({"vars": []}, "at least one variable"),
])
def test_bad_block(kwargs: dict, needle: str) -> None:
    args = {"name": "a", "collection": "pf", "length": 2, "pad_mode": "constant", "vars": [VarSpec("cand.pt")]}
    with pytest.raises(ValueError, match=needle):
        BlockSpec(**{**args, **kwargs})


def test_sv_block_without_svs_is_refused() -> None:
    cands, jets = _cands()
    spec = InputSpec(kind="blocks", features=[], blocks=[BlockSpec("s", "sv", 2, "constant", [VarSpec("cand.pt")])])
    with pytest.raises(ValueError, match="reads secondary vertices but none were given"):
        build_blocks(cands, jets, spec)


def test_missing_puppi_weight_is_one_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    import hepml_coffea.data.constituents as C

    C._NOTED.discard("PFCand")
    events = read_arrays(SAMPLES / "nano_tt_v15.root")  # NanoAOD v15 PFCand has no puppiWeight
    with caplog.at_level(logging.WARNING, logger="hepml_coffea.data.constituents"):
        a = fatjet_constituents(events, cand_fields=("puppiWeight",))
        fatjet_constituents(events, cand_fields=("puppiWeight",))
    assert np.all(ak.to_numpy(ak.flatten(a.cands.puppiWeight)) == 1.0)
    notes = [r for r in caplog.records if "no puppiWeight" in r.getMessage()]
    assert len(notes) == 1 and "PFCand" in notes[0].getMessage()


def test_pfnano_extras_association_rows_and_svs() -> None:
    """Per-row FatJetPFCands_btag* follow their candidates; FatJetSVs grouped per jet in file
    order; a file without FatJetSVs is refused by name."""
    import uproot

    events = read_arrays(SAMPLES / "pfnano.root")
    jc = fatjet_constituents(events, cand_fields=("btagSip3dVal",), sv_fields=("pt", "eta"))
    t = uproot.open(SAMPLES / "pfnano.root")["Events"]
    a = t.arrays(["FatJetPFCands_jetIdx", "FatJetPFCands_btagSip3dVal", "FatJetPFCands_pFCandsIdx", "PFCands_pt",
                  "FatJetSVs_jetIdx", "FatJetSVs_pt"], library="np", entry_stop=1)
    rows = a["FatJetPFCands_jetIdx"][0] == 0
    pt = a["PFCands_pt"][0][a["FatJetPFCands_pFCandsIdx"][0][rows]]
    want = a["FatJetPFCands_btagSip3dVal"][0][rows][np.argsort(-pt, kind="stable")]
    np.testing.assert_allclose(ak.to_numpy(jc.cands.btagSip3dVal[0]), want)
    np.testing.assert_allclose(ak.to_numpy(jc.svs.pt[0]), a["FatJetSVs_pt"][0][a["FatJetSVs_jetIdx"][0] == 0])
    assert len(jc.svs) == len(jc.jets) and np.isfinite(ak.to_numpy(ak.flatten(jc.svs.eta))).all()
    with pytest.raises(MissingBranchError, match="no FatJetSVs collection"):
        fatjet_constituents(read_arrays(SAMPLES / "nano_tt_v15.root"), sv_fields=("pt",))
