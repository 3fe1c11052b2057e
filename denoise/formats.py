"""The image file types denoise reads and writes, by suffix: below both training and the runtime, which
both list image folders (training must not depend on the deployment code for it)."""

IMAGE_SUFFIXES = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF",
                  ".webp": "WEBP", ".bmp": "BMP"}
