"""The commands of ``denoise``, one module each; denoise/cli.py is the group that holds them.

common.py holds what they share: the parameter types, the error mapping, the signal handling and the
engine options of ``batch`` and ``eval``. Heavy imports (torch, ONNX Runtime) stay inside the commands.
"""
