"""The engine, without torch: model files, backends (ONNX Runtime, TensorRT, PyTorch on a GPU), tiling, noise
levels and the ``Denoiser`` -- images in, images out. It knows nothing of folders: that is ``denoise.job``."""
