#!/usr/bin/env python3
"""The PyTorch reference for `ventral bench --loader` on an image folder: torchvision's
ImageFolder with the ImageNet training transform (RandomResizedCrop(224), RandomHorizontalFlip,
ToTensor, Normalize), PIL decoding, through a DataLoader of batch 64 with num_workers=0 (one
process decoding, as one ventral loader thread), one epoch. Prints JSON: images, seconds,
images_per_s.

    python3 bench/reference_loader.py DIR [--size 224] [--batch 64]
"""
import argparse
import json
import time

import torch
import torchvision
from torchvision import transforms


def main():
    p = argparse.ArgumentParser()
    p.add_argument("folder")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=64)
    a = p.parse_args()
    torch.set_num_threads(1)
    t = transforms.Compose([transforms.RandomResizedCrop(a.size), transforms.RandomHorizontalFlip(),
                            transforms.ToTensor(), transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    data = torchvision.datasets.ImageFolder(a.folder, transform=t)
    loader = torch.utils.data.DataLoader(data, batch_size=a.batch, shuffle=True, num_workers=0, drop_last=True)
    n, t0 = 0, time.perf_counter()
    for images, _ in loader:
        n += images.shape[0]
    s = time.perf_counter() - t0
    print(json.dumps({"images": n, "seconds": s, "images_per_s": n / s}))


if __name__ == "__main__":
    main()
