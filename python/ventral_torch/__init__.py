"""ventral's models in plain PyTorch: the same modules, parameter names and per-step outputs as
the C++ toolkit, and a loader for what ventral writes.

    import ventral_torch
    model = ventral_torch.load("runs/blt")            # a run directory, or `ventral export`'s model.pt
    logits = model(model.preprocess(images))          # a list: the logits of every read-out step

`images` are what you would hand torchvision: a PIL image, or uint8 / [0, 1] float tensors
(C x H x W or N x C x H x W, RGB). `model.preprocess` converts them as ventral did in training
(channels, resize or resize + centre crop, per-channel normalisation), so the numbers match
`ventral eval`. The only dependency is PyTorch.
"""
import json
import os

import torch
import torch.nn.functional as F

from .models import VisionModel, create, list_models

__all__ = ["create", "list_models", "load", "load_state_dict", "Preprocess", "VisionModel"]


class Preprocess:
    """ventral's input pipeline for one model, from its model.json `input` and `normalisation`:
    uint8 -> [0, 1], channel conversion (gray = 0.299 R + 0.587 G + 0.114 B), resize (shorter
    side to `resize` then a centre crop of `center_crop`, or straight to image_size x
    image_size), then (x - mean) / std per channel. Resizing is bilinear with antialiasing, as
    PIL's (and ventral's) bilinear resampling."""

    def __init__(self, channels, image_size, mean, std, resize=0, center_crop=0):
        self.channels, self.image_size = channels, image_size
        self.resize, self.center_crop = resize, center_crop
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)

    def __call__(self, images):
        x = _as_tensor(images)
        single = x.dim() == 3
        if single:
            x = x.unsqueeze(0)
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        if x.shape[1] != self.channels:  # alpha dropped, as ventral's decoder does
            if x.shape[1] >= 3:
                x = x[:, :3]
                if self.channels == 1:
                    x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
            else:
                x = x[:, :1] if self.channels == 1 else x[:, :1].expand(-1, 3, -1, -1)
        h, w = x.shape[2], x.shape[3]
        if self.resize:
            short, long_ = (h, w) if h <= w else (w, h)
            new_long = int(self.resize * long_ / short)
            size = (self.resize, new_long) if h <= w else (new_long, self.resize)
            if size != (h, w):
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        elif not self.center_crop and (h, w) != (self.image_size, self.image_size):
            # ventral resizes with OpenCV here (area when shrinking, bilinear when enlarging): close
            # to this, not equal; the resize + crop path above is the one checked against ventral.
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False,
                              antialias=True)
        if self.center_crop:
            c, h, w = self.center_crop, x.shape[2], x.shape[3]
            if h < c or w < c:  # zeros around, as torchvision's CenterCrop pads
                ph, pw = max(0, c - h), max(0, c - w)
                x = F.pad(x, (pw // 2, (pw + 1) // 2, ph // 2, (ph + 1) // 2))
                h, w = x.shape[2], x.shape[3]
            top, left = int(round((h - c) / 2.0)), int(round((w - c) / 2.0))
            x = x[:, :, top:top + c, left:left + c]
        x = (x - self.mean) / self.std
        return x[0] if single else x


def _as_tensor(images):
    if isinstance(images, torch.Tensor):
        return images
    try:  # a PIL image, without importing PIL
        import numpy as np
        a = np.asarray(images)
    except Exception as e:  # pragma: no cover
        raise TypeError("expected a tensor or a PIL image, got %r" % type(images)) from e
    t = torch.from_numpy(a.copy())
    return t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1)


def load_state_dict(model, state, strict=True):
    """Loads a state_dict (a "module." prefix, as DataParallel writes it, is stripped)."""
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return model.load_state_dict(state, strict=strict)


def _checkpoint_state(path):
    """The model tensors of a ventral checkpoint (a LibTorch archive: torch.jit.load reads it)."""
    archive = torch.jit.load(path, map_location="cpu")
    model = archive.model
    state = {k: v.detach().clone() for k, v in model.named_parameters()}
    state.update({k: v.detach().clone() for k, v in model.named_buffers()})
    return state


def load(path, checkpoint="last"):
    """A model with its weights, in eval mode, from `ventral export`'s model.pt (model.json beside
    it) or from a run directory (its model.json and checkpoints/`checkpoint`.pt: last, the
    weights test.json and `ventral eval RUN` report, or best, the best validation epoch's).
    The model carries `.preprocess` (a Preprocess), `.classes` and `.meta` (model.json)."""
    if os.path.isdir(path):
        meta_path = os.path.join(path, "model.json")
        weights = os.path.join(path, "checkpoints", checkpoint + ".pt")
        if not os.path.exists(meta_path):
            raise FileNotFoundError("%s: no model.json (a run trained before ventral wrote it): "
                                    "`ventral export %s --out model.pt` writes one" % (path, path))
        state = _checkpoint_state(weights)
    else:
        meta_path = os.path.splitext(path)[0] + ".json"
        if not os.path.exists(meta_path):
            raise FileNotFoundError("%s: no %s beside it (`ventral export` writes both)" % (path, meta_path))
        state = torch.load(path, map_location="cpu")
    with open(meta_path) as f:
        meta = json.load(f)
    model = from_meta(meta)
    load_state_dict(model, state)
    model.eval()
    return model


def from_meta(meta):
    """The model a model.json describes (random weights), with `.preprocess`, `.classes`, `.meta`."""
    inp, options = meta["input"], dict(meta.get("options", {}))
    model = create(meta["model"], in_channels=inp["channels"], num_classes=len(meta["classes"]),
                   image_size=inp["image_size"], **options)
    norm = meta["normalisation"]
    model.preprocess = Preprocess(inp["channels"], inp["image_size"], norm["mean"], norm["std"],
                                  inp.get("resize", 0), inp.get("center_crop", 0))
    model.classes = list(meta["classes"])
    model.meta = meta
    return model
