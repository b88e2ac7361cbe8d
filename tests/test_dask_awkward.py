"""dask-awkward mode: ``score_fatjets`` on ``NanoEventsFactory.from_root(..., mode="dask")``.

Runs where ``dask_awkward`` is installed: the second environment ``.ci/run`` builds from
``pip install "coffea[dask-awkward]"`` (dask 2025.3.x) sets ``HEPML_REQUIRE_DASK_AWKWARD=1``, so
there a missing dask-awkward fails instead of skipping. In the README environment (dask 2026.x,
which dask-awkward does not support) the tests are skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

if os.environ.get("HEPML_REQUIRE_DASK_AWKWARD"):
    import dask_awkward as dak
else:
    dak = pytest.importorskip("dask_awkward")

from hepml_coffea import score_fatjets
from hepml_coffea.data.io import load_events
from hepml_coffea.selection import Selection

SAMPLES = Path(__file__).resolve().parent / "samples"
TAGGERS = ["pfn", "particlenet-lite", "baseline"]


@pytest.mark.parametrize("sample", ["pfnano.root", "nano_tt_v15.root"])
def test_lazy_scores_equal_eager_bit_for_bit(sample):
    path = SAMPLES / sample
    events = load_events(path, mode="dask")
    lazy = score_fatjets(events, TAGGERS, device="cpu")
    assert isinstance(lazy, dak.Array)
    assert lazy.npartitions == events.npartitions  # one output partition per chunk
    # what the column optimisation reads: the fat-jet / constituent collections, not the generator record
    cols = set().union(*dak.report_necessary_columns(lazy).values())
    assert "FatJet_pt" in cols and not any(c.startswith("GenPart_") or c.startswith("Jet_") for c in cols)
    got = lazy.compute()
    eager = score_fatjets(load_events(path), TAGGERS, device="cpu")
    assert str(got.type) == str(eager.type)
    assert lazy.form.type == eager.layout.form.type  # the meta is the eager layout
    assert ak.fields(got) == [*TAGGERS, "in_domain"]
    for name in TAGGERS:
        a, b = ak.flatten(got[name]), ak.flatten(eager[name])
        assert ak.to_list(ak.is_none(a)) == ak.to_list(ak.is_none(b))
        np.testing.assert_array_equal(ak.to_numpy(ak.fill_none(a, -1.0)), ak.to_numpy(ak.fill_none(b, -1.0)))
        assert ak.to_list(got.in_domain[name]) == ak.to_list(eager.in_domain[name])
    assert int(ak.sum(~ak.is_none(ak.flatten(got["pfn"])))) > 0


def test_lazy_with_selection_and_mask_and_several_partitions():
    path = SAMPLES / "nano_tt_v15.root"
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    events = NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema, mode="dask",
                                         steps_per_file=4).events()
    assert events.npartitions == 4
    sel = Selection(pt_min=300, pt_max=3000, abs_eta_max=2.4)
    mask = events.FatJet.pt > 400
    lazy = score_fatjets(events, ["pfn"], device="cpu", selection=mask)
    lazy_sel = score_fatjets(events, ["pfn"], device="cpu", selection=sel)
    assert lazy.npartitions == lazy_sel.npartitions == 4
    got, got_sel = lazy.compute(), lazy_sel.compute()
    eager_events = load_events(path)
    want = score_fatjets(eager_events, ["pfn"], device="cpu", selection=eager_events.FatJet.pt > 400)
    want_sel = score_fatjets(eager_events, ["pfn"], device="cpu", selection=sel)
    # other chunks than the one eager call: other batches, so equal to float32 rounding (bit for bit
    # on the same partitioning: test above)
    for a, b in ((got, want), (got_sel, want_sel)):
        assert ak.to_list(ak.num(a)) == ak.to_list(ak.num(eager_events.FatJet))
        assert ak.to_list(ak.is_none(a.pfn, axis=1)) == ak.to_list(ak.is_none(b.pfn, axis=1))
        assert ak.to_list(a.in_domain) == ak.to_list(b.in_domain)
        np.testing.assert_allclose(ak.to_numpy(ak.flatten(ak.fill_none(a.pfn, -1.0))),
                                   ak.to_numpy(ak.flatten(ak.fill_none(b.pfn, -1.0))), rtol=0, atol=1e-6)
    assert int(ak.sum(~ak.is_none(got.pfn, axis=1))) < int(ak.sum(~ak.is_none(got_sel.pfn, axis=1)))


def test_eager_mask_with_lazy_events_is_a_configuration_error():
    from hepml_coffea.config import ConfigurationError
    from hepml_coffea.scoring import FatJetTagger

    events = load_events(SAMPLES / "pfnano.root", mode="dask")
    eager_mask = load_events(SAMPLES / "pfnano.root").FatJet.pt > 0
    with pytest.raises(ConfigurationError, match="dask-awkward events and"):
        FatJetTagger(["pfn"], device="cpu")(events, mask=eager_mask)
