"""denoise: batch image denoising with a symmetric convolutional auto-encoder.

    from denoise import Denoiser
    clean = Denoiser().denoise(noisy_uint8_rgb, sigma=0.1)

    from denoise import Denoiser, denoise_folder
    with Denoiser() as denoiser:
        summary = denoise_folder(denoiser, "noisy", "clean")   # every image under noisy/ into clean/

Importing this package never imports torch; training and export do (the `train` extra).
"""

__version__ = "0.1.0"

from denoise.errors import DenoiseError
from denoise.runtime.denoiser import Denoiser


def __getattr__(name):
    """``denoise_folder`` loads the folder job (and Pillow) when first asked for: ``import denoise``, which every
    command runs, stays as light as the engine."""
    if name == "denoise_folder":
        from denoise.job.batch import denoise_folder

        return denoise_folder
    raise AttributeError(f"module 'denoise' has no attribute {name!r}")

__all__ = ["Denoiser", "DenoiseError", "denoise_folder", "__version__"]
