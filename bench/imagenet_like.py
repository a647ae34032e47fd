#!/usr/bin/env python3
"""Writes an ImageNet-like image folder for `ventral bench --loader`: N JPEGs of about 500x375
(sizes vary from 400 to 500 by 300 to 400, both orientations), quality 90, in 10 class folders.
Each is a smooth gradient with random ellipses and polygons, blurred, with sensor-like noise, so
that its JPEG size (about 60-100 KB) and decoding cost resemble a photograph's rather than flat
colour's or pure noise's.

    python3 bench/imagenet_like.py OUT_DIR [N=5000] [SEED=0]
"""
import os
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def picture(rng):
    w, h = int(rng.integers(400, 501)), int(rng.integers(300, 401))
    if rng.random() < 0.2:
        w, h = h, w
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([c0 + c1 * x / w + c2 * y / h for c0, c1, c2 in rng.uniform(-80, 200, (3, 3))], axis=-1)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(12, 30))):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        x0, y0 = int(rng.integers(-50, w)), int(rng.integers(-50, h))
        x1, y1 = x0 + int(rng.integers(10, w // 2)), y0 + int(rng.integers(10, h // 2))
        if rng.random() < 0.5:
            draw.ellipse([x0, y0, x1, y1], fill=colour)
        else:
            pts = [(int(rng.integers(x0, x1)), int(rng.integers(y0, y1))) for _ in range(5)]
            draw.polygon(pts, fill=colour)
    img = img.filter(ImageFilter.GaussianBlur(1.2))
    noisy = np.asarray(img, dtype=np.float32) + rng.normal(0, 6, (h, w, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def main():
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    rng = np.random.default_rng(int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    for i in range(n):
        folder = os.path.join(out, "class%02d" % (i % 10))
        os.makedirs(folder, exist_ok=True)
        picture(rng).save(os.path.join(folder, "%06d.JPEG" % i), quality=90)
    print("wrote %d JPEGs under %s" % (n, out))


if __name__ == "__main__":
    main()
