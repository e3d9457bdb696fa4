"""Runtimes: where a score net runs, and how fast.

=================  ===========================================================
module             what it knows
=================  ===========================================================
``backends``       the backend names, and which can run on a device here
``cpu``            this CPU's flags (bf16, VNNI), cores, the speed-figure line
``devices``        which devices this machine has
``pytorch``        the torch backends (fp32, bf16, fp16)
``onnx``           the ONNX export and onnxruntime session (fp32, int8)
``openvino``       the OpenVINO conversion, NNCF int8, compiling, streams
``cache``          the export cache: folder, model fingerprint, atomic writes
``inputs``         what the runtimes feed a net (rows from the family's encoder)
``probe``          ``auto``: time the candidates, check agreement, cache the choice
``runtime``        :func:`build_runtime`, the one entry point
=================  ===========================================================

The runtimes never tokenize and never look inside a checkpoint: a family
(:mod:`crossrank.families`) hands them a score net and its encoder.
"""

from crossrank.runtimes.runtime import Forward, Runtime, build_runtime

__all__ = ["Forward", "Runtime", "build_runtime"]
