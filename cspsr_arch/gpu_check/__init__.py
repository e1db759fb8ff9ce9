"""The GPU check (``tools/gpu_check.py``): one command that runs the CUDA path of the project and says plainly
what passed.

Modules: :mod:`.checks` (CUDA against CPU equivalence, forward and backward), :mod:`.compiled` (``torch.compile``
against eager), :mod:`.inference` (``basicsr infer`` untiled and tiled), :mod:`.training` (``basicsr train``, its
resume and a ``torchrun`` DDP run, as subprocesses), :mod:`.timing` (speed and peak memory), :mod:`.report`
(rows, table, JSON and exit status) and :mod:`.runner` (order and time budget). What each check means and its
tolerances: ``docs/gpu.md``.
"""
