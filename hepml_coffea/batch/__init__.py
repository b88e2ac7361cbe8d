"""Running a fileset: locally, on Dask clusters, or as batch jobs.

* :mod:`~hepml_coffea.batch.run` — ``run_fileset``: the coffea Runner over a fileset
* :mod:`~hepml_coffea.batch.clusters` — ``make_cluster``: local CPU / GPU, Slurm and HTCondor Dask clusters
* :mod:`~hepml_coffea.batch.core` — what every scheduler shares: splitting, job folders, status, merging
* :mod:`~hepml_coffea.batch.htcondor`, :mod:`~hepml_coffea.batch.slurm` — each scheduler's own syntax

Nothing is imported here, so ``import hepml_coffea.batch`` stays cheap.
"""
