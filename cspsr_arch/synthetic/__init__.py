"""Generated cross-spectral stereo data: scenes and stereo geometry (``scenes``), the NIR model (``spectra``)
and the canonical-layout writer (``layout``); see tools/make_synthetic_rgbnir.py and
tools/make_semisynthetic_rgbnir.py."""
