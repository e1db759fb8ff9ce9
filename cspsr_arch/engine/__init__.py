"""How cspsr adapts BasicSR: options (``base`` files, strict keys), checkpoints (one reader, atomic
writes), CPU-safe resume, device-agnostic distributed set-up, absent test sets, ``torch.compile``,
and :mod:`cspsr_arch.engine.patches`, the one list of the BasicSR functions replaced while a pipeline runs.
"""
