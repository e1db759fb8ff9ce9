"""Released weights (``weights/``): the release step from a benchmark run (:mod:`~cspsr_arch.release.weights`),
the model card's figures from the run's report (:mod:`~cspsr_arch.release.card`), the country test inputs as
the benchmark makes them (:mod:`~cspsr_arch.release.country`), crop figures (:mod:`~cspsr_arch.release.figure`)
and ``tools/release_weights.py`` (:mod:`~cspsr_arch.release.command`).
"""
