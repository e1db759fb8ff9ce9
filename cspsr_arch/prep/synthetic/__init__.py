"""Generated cross-spectral stereo data: scenes and stereo geometry (``scenes``), the NIR model (``spectra``)
and the data set builder (``build``); the layout is written by :mod:`cspsr_arch.prep.split`. See
tools/make_synthetic_rgbnir.py and :mod:`cspsr_arch.prep.semisynthetic`."""
