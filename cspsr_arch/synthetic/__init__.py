"""Embedded synthetic cross-spectral stereo data (scenes, geometry); see tools/make_synthetic_rgbnir.py."""
