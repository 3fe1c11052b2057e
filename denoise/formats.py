"""The image file types denoise reads and writes, by suffix: below both training and the runtime, which
both list image folders (training must not depend on the deployment code for it)."""

IMAGE_SUFFIXES = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF",
                  ".webp": "WEBP", ".bmp": "BMP", ".avif": "AVIF", ".heic": "HEIF", ".heif": "HEIF",
                  ".gif": "GIF"}
# HEIC/HEIF need pillow-heif (in the cpu and gpu extras); AVIF is Pillow's own (Pillow 11.2+).
