"""torchvision's ImageNet evaluation transform on every image under ROOT (sorted paths), for
test_loader's comparison with ventral's data.preset=imagenet (issue 16):
Resize(256) -> CenterCrop(224) -> ToTensor -> Normalize(ImageNet mean, std), on PIL images
converted to RGB as torchvision's ImageFolder loads them. Writes {"x": N x 3 x 224 x 224} to OUT.

    python3 tests/python/torchvision_preprocess.py ROOT OUT
"""
import glob
import os
import sys

import torch
from PIL import Image
from torchvision import transforms as T


def main():
    root, out = sys.argv[1], sys.argv[2]
    transform = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                           T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    paths = sorted(glob.glob(os.path.join(root, "*", "*.png")))
    x = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths])
    torch.save({"x": x}, out)
    print(len(paths))


if __name__ == "__main__":
    main()
