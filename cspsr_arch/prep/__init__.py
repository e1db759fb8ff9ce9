"""Data preparation: the canonical split layout (:mod:`~cspsr_arch.prep.split`, its one owner), the readers of
the public data sets (:mod:`~cspsr_arch.prep.sources`), their conversion (:mod:`~cspsr_arch.prep.prepare`),
LMDBs (:mod:`~cspsr_arch.prep.lmdb`), and the synthetic (:mod:`~cspsr_arch.prep.synthetic`) and semi-synthetic
(:mod:`~cspsr_arch.prep.semisynthetic`) generators. The command-line tools in ``tools/`` call into it."""
