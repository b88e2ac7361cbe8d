"""Data in: files and filesets, the NanoAOD flavours' constituents, truth labels, jet geometry.

* :mod:`~hepml_coffea.data.io` — NanoEvents / uproot reading (TTree or RNTuple)
* :mod:`~hepml_coffea.data.filesets` — filesets, file checks
* :mod:`~hepml_coffea.data.constituents` — fat jets -> constituents, every NanoAOD flavour
* :mod:`~hepml_coffea.data.truth` — top labels from the generator record
* :mod:`~hepml_coffea.data.geometry` — wrap_phi, energies, delta R, offsets, tau32
* ``cms_pfnano.root`` — the bundled CMS sample (coffea's BSD-3 test file)

Nothing is imported here, so ``import hepml_coffea.data`` stays cheap.
"""
