"""Sample generation: Pythia8 + FastJet -> PFNano-like ROOT files."""

from hepml_coffea.samples.generate import GenerationConfig, generate, generate_arrays
from hepml_coffea.samples.write import read_metadata, write_pfnano

__all__ = ["GenerationConfig", "generate", "generate_arrays", "read_metadata", "write_pfnano"]
