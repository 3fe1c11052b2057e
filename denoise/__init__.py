"""denoise: batch image denoising with a symmetric convolutional auto-encoder.

    from denoise import Denoiser
    clean = Denoiser().denoise(noisy_uint8_rgb, sigma=0.1)

Importing this package never imports torch; training and export do (the `train` extra).
"""

__version__ = "0.1.0"

from denoise.errors import DenoiseError
from denoise.runtime.denoiser import Denoiser

__all__ = ["Denoiser", "DenoiseError", "__version__"]
