"""``basicsr infer`` and ONNX export: the command (:mod:`~cspsr_arch.infer.command`), model loading
(:mod:`~cspsr_arch.infer.model`), pair discovery and PNG output (:mod:`~cspsr_arch.infer.pairs`),
tiled super-resolution (:mod:`~cspsr_arch.infer.tiling`) and ONNX export (:mod:`~cspsr_arch.infer.onnx`).
"""
