"""Inference without torch: ONNX Runtime backend, the Denoiser, and the folder job."""
