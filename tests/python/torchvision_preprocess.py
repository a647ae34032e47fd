"""torchvision's ImageNet evaluation transform on every image under ROOT (sorted paths), for
test_loader's comparison with ventral's data.preset=imagenet (issue 16):
Resize(256) -> CenterCrop(224) -> ToTensor -> Normalize(ImageNet mean, std), on PIL images
converted to RGB as torchvision's ImageFolder loads them; and python/ventral_torch's Preprocess
for the same model.json settings. Writes {"x": torchvision's, "twin": ventral_torch's} (each
N x 3 x 224 x 224) to OUT.

    python3 tests/python/torchvision_preprocess.py ROOT OUT
"""
import glob
import os
import sys

import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import ventral_torch  # noqa: E402
from torchvision import transforms as T


def main():
    root, out = sys.argv[1], sys.argv[2]
    transform = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                           T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    paths = sorted(glob.glob(os.path.join(root, "*", "*.png")))
    images = [Image.open(p).convert("RGB") for p in paths]
    x = torch.stack([transform(im) for im in images])
    twin = ventral_torch.Preprocess(3, 224, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], resize=256, center_crop=224)
    torch.save({"x": x, "twin": torch.stack([twin(im) for im in images])}, out)
    print(len(paths))


if __name__ == "__main__":
    main()
