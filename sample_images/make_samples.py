"""Regenerate sample_images/ from the project's shared photo set (../shared/data). Not needed to use them.

Crops 256x192 (and one 192x256) regions of four reference photos and writes, for each, a JPEG at
quality 20 (Pillow, 4:2:0) and the matching crop of the shared Gaussian-blur version (sigma 1.5).
"""

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

HERE = Path(__file__).parent
DATA = HERE.parent.parent / "shared" / "data"
CROPS = {  # name -> (left, top, width, height)
    "kodim23_parrots": (300, 100, 256, 192),
    "astronaut": (120, 40, 256, 192),
    "camera_grey": (160, 60, 256, 192),          # 8-bit grayscale
    "kodim03_hats_16bit": (64, 32, 192, 224),    # 16-bit RGB PNG, portrait
}


def crop(path: Path, box) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # keeps 16 bits
    left, top, width, height = box
    return image[top:top + height, left:left + width]


def main() -> None:
    for sub in ("ref", "dist/jpeg_q20", "dist/blur_s1.5"):
        (HERE / sub).mkdir(parents=True, exist_ok=True)
    for name, box in CROPS.items():
        ref = crop(DATA / "ref" / f"{name}.png", box)
        cv2.imwrite(str(HERE / "ref" / f"{name}.png"), ref)
        blur = crop(DATA / "dist" / "blur_gauss_s1.5" / f"{name}.png", box)
        cv2.imwrite(str(HERE / "dist" / "blur_s1.5" / f"{name}.png"), blur)
        eight = (ref / 257).round().astype(np.uint8) if ref.dtype == np.uint16 else ref
        rgb = eight if eight.ndim == 2 else cv2.cvtColor(eight, cv2.COLOR_BGR2RGB)
        Image.fromarray(rgb).save(HERE / "dist" / "jpeg_q20" / f"{name}.jpg", quality=20)


if __name__ == "__main__":
    main()
