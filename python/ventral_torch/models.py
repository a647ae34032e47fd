"""ventral's model families as plain PyTorch modules.

Each class mirrors its C++ counterpart in models/ layer for layer, with the same parameter and
buffer names (so a state_dict maps one to one) and the same outputs: ``model(images, steps)``
returns a list of logits, one per step for models that read out at every step, otherwise the
final step's only. ``model.probe``, when set to a callable ``probe(area, step, activation)``,
sees every area's activation as ventral's ``--features`` export does.

    model = create("cortical_blt", in_channels=1, num_classes=10, image_size=28)
    logits_per_step = model(images, steps=4)
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["create", "list_models", "VisionModel"]


class VisionModel(nn.Module):
    """The interface every family implements (models/model.hpp)."""

    recurrent = False
    default_steps = 1
    reads_out_every_step = True
    areas = ()

    def __init__(self):
        super().__init__()
        self.probe = None

    def record(self, area, step, x):
        if self.probe is not None:
            self.probe(area, step, x)

    def forward(self, images, steps=None):  # pragma: no cover - every family overrides it
        raise NotImplementedError


def conv(cin, cout, k, stride=1, bias=False):
    """A k x k convolution with "same" padding (nn::conv in models/layers.hpp)."""
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=bias)


def init_resnet_weights(module):
    """torchvision's initialisation: Kaiming normal (fan_out) for convs, norms to (1, 0)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _plus(total, x):
    return x if total is None else total + x


def global_pool(x):
    return x.mean((2, 3))


def conv_out(size, k, s, p):
    return (size + 2 * p - k) // s + 1


# ---- ResNets (models/resnet.cpp, models/shared_resnet.cpp)

class TimeBatchNorm(nn.Module):
    """A batch norm per time step; steps beyond the last copy use the last copy."""

    def __init__(self, channels, copies):
        super().__init__()
        self.norms = nn.ModuleList([nn.BatchNorm2d(channels) for _ in range(copies)])

    def forward(self, x, step):
        return self.norms[min(step, len(self.norms) - 1)](x)


class BasicBlock(nn.Module):
    """torchvision's BasicBlock; per-step batch norms with norm_copies > 1; shortcut 'A' is
    He et al.'s parameter-free zero padding."""

    expansion = 1

    def __init__(self, cin, planes, stride=1, shortcut="B", norm_copies=1):
        super().__init__()
        self.conv1 = conv(cin, planes, 3, stride)
        self.conv2 = conv(planes, planes, 3)
        self.timed = norm_copies > 1
        if self.timed:
            self.bn1 = TimeBatchNorm(planes, norm_copies)
            self.bn2 = TimeBatchNorm(planes, norm_copies)
        else:
            self.bn1 = nn.BatchNorm2d(planes)
            self.bn2 = nn.BatchNorm2d(planes)
        self.stride, self.pad_channels = stride, 0
        self.downsample = None
        if stride != 1 or cin != planes:
            if shortcut == "A":
                self.pad_channels = planes - cin
            else:
                self.downsample = nn.Sequential(conv(cin, planes, 1, stride), nn.BatchNorm2d(planes))

    def norm(self, bn, x, step):
        return bn(x, step) if self.timed else bn(x)

    def forward(self, x, step=0):
        out = F.relu(self.norm(self.bn1, self.conv1(x), step))
        out = self.norm(self.bn2, self.conv2(out), step)
        identity = x
        if self.downsample is not None:
            identity = self.downsample(x)
        elif self.pad_channels > 0 or self.stride != 1:
            identity = x[:, :, ::self.stride, ::self.stride]
            p = self.pad_channels
            identity = F.pad(identity, (0, 0, 0, 0, p // 2, p - p // 2))
        return F.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride=1):
        super().__init__()
        self.conv1 = conv(cin, planes, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv(planes, planes, 3, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv(planes, planes * 4, 1)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = None
        if stride != 1 or cin != planes * 4:
            self.downsample = nn.Sequential(conv(cin, planes * 4, 1, stride), nn.BatchNorm2d(planes * 4))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


class ResNet(VisionModel):
    """CIFAR ResNets (3x3 stem, 16/32/64) and torchvision's resnet18/34/50 (7x7 stem and max
    pool, or the 3x3 stem below 64 px with stem='auto')."""

    def __init__(self, blocks, widths, bottleneck=False, cifar=False, in_channels=1, num_classes=10,
                 image_size=28, shortcut="B", stem="auto"):
        super().__init__()
        w0 = widths[0]
        self.small_stem = cifar or stem == "small" or (stem == "auto" and image_size < 64)
        self.conv1 = conv(in_channels, w0, 3) if self.small_stem else \
            nn.Conv2d(in_channels, w0, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(w0)
        shortcut = shortcut[0] if cifar else "B"
        cin, stages = w0, []
        for s, (n, w) in enumerate(zip(blocks, widths)):
            layer = []
            for b in range(n):
                stride = 2 if (b == 0 and s > 0) else 1
                if bottleneck:
                    layer.append(Bottleneck(cin, w, stride))
                    cin = w * 4
                else:
                    layer.append(BasicBlock(cin, w, stride, shortcut))
                    cin = w
            stages.append(nn.Sequential(*layer))
        self.stages = len(stages)
        for s, layer in enumerate(stages):
            self.add_module("layer%d" % (s + 1), layer)
        self.fc = nn.Linear(cin, num_classes)
        self.areas = tuple(["stem"] + ["layer%d" % (s + 1) for s in range(self.stages)])
        init_resnet_weights(self)

    def forward(self, images, steps=None):
        x = F.relu(self.bn1(self.conv1(images)))
        if not self.small_stem:
            x = F.max_pool2d(x, 3, 2, 1)
        self.record("stem", 0, x)
        for s in range(self.stages):
            x = getattr(self, "layer%d" % (s + 1))(x)
            self.record("layer%d" % (s + 1), 0, x)
        return [self.fc(global_pool(x))]


class SharedResNet(VisionModel):
    """Weight-shared ResNet (Liao & Poggio 2016): one block per stage (or one for all stages)
    unrolled `steps` times, per-step batch norm, avg-pool + 1x1 projection transitions."""

    recurrent = True
    reads_out_every_step = False
    areas = ("stage1", "stage2", "stage3")

    def __init__(self, share_all=False, in_channels=1, num_classes=10, width=0, steps=0, **_):
        super().__init__()
        self.share_all = share_all
        self.default_steps = steps or 3
        w = width or (48 if share_all else 16)
        self.widths = [w, w, w] if share_all else [w, 2 * w, 4 * w]
        self.conv1 = conv(in_channels, w, 3)
        self.bn1 = nn.BatchNorm2d(w)
        for s in (1, 2):
            self.add_module("transition%d" % (s + 1), nn.Sequential(
                nn.AvgPool2d(2), conv(self.widths[s - 1], self.widths[s], 1), nn.BatchNorm2d(self.widths[s])))
        if share_all:
            self.block = BasicBlock(w, w, 1, "B", self.default_steps * 3)
        else:
            for s, ws in enumerate(self.widths):
                self.add_module("layer%d" % (s + 1), BasicBlock(ws, ws, 1, "B", self.default_steps))
        self.fc = nn.Linear(self.widths[-1], num_classes)
        init_resnet_weights(self)

    def forward(self, images, steps=None):
        steps = steps or self.default_steps
        x = F.relu(self.bn1(self.conv1(images)))
        for s in range(3):
            if s > 0:
                x = F.relu(getattr(self, "transition%d" % (s + 1))(x))
            block = self.block if self.share_all else getattr(self, "layer%d" % (s + 1))
            for t in range(steps):
                norm_step = min(t, self.default_steps - 1) + (s * self.default_steps if self.share_all else 0)
                x = block(x, norm_step)
                self.record("stage%d" % (s + 1), t, x)
        return [self.fc(global_pool(x))]


# ---- The V1-V2-V4-IT network (models/cortical.cpp)

class Area(nn.Module):
    def __init__(self, cin, width, kernel, above, lateral, topdown, steps):
        super().__init__()
        self.bottom_up = conv(cin, width, kernel)
        self.lateral = conv(width, width, 3) if lateral else None
        self.top_down = conv(above, width, 3) if (topdown and above > 0) else None
        self.norm = TimeBatchNorm(width, steps)


class CorticalNet(VisionModel):
    """h_k(t) = ReLU(BN_k,t(bottom-up + lateral + top-down)); bottom-up from the 2x2-max-pooled
    area below, lateral from h_k(t-1), top-down from h_{k+1}(t-1) upsampled (nearest); BLT+ adds
    IT -> V1 (bilinear + 1x1). A GAP + linear readout, shared across steps, reads IT at every
    step."""

    areas = ("V1", "V2", "V4", "IT")

    def __init__(self, lateral=False, topdown=False, long_range=False, synchronous=False, input_every_step=True,
                 cumulative_readout=False, steps=4, widths=(16, 32, 64, 128), kernels=(3, 3, 3, 3), in_channels=1,
                 num_classes=10):
        super().__init__()
        self.lateral_on, self.topdown_on, self.long_range_on = lateral, topdown, long_range
        self.synchronous, self.input_every_step, self.cumulative_readout = synchronous, input_every_step, cumulative_readout
        self.widths, self.steps = list(widths), steps
        self.recurrent = lateral or topdown or long_range
        self.default_steps = steps if self.recurrent else 1
        for k, name in enumerate(self.areas):
            cin = in_channels if k == 0 else self.widths[k - 1]
            above = self.widths[k + 1] if k + 1 < 4 else 0
            self.add_module(name, Area(cin, self.widths[k], kernels[k], above, lateral, topdown, steps))
        self.long_range = conv(self.widths[3], self.widths[0], 1) if long_range else None
        self.readout = nn.Linear(self.widths[3], num_classes)
        init_resnet_weights(self)

    def forward(self, images, steps=None, step_inputs=None):
        steps = steps or self.default_steps
        n, sizes = images.shape[0], []
        h, w = images.shape[2], images.shape[3]
        for _ in range(4):
            sizes.append((h, w))
            h, w = h // 2, w // 2
        areas = [getattr(self, a) for a in self.areas]
        prev, logits, pooled_sum = [None] * 4, [], None
        for t in range(steps):
            cur = [None] * 4
            for k, area in enumerate(areas):
                drive = None
                if k == 0:
                    if t == 0 or self.input_every_step:
                        image = images if not step_inputs else step_inputs[min(t, len(step_inputs) - 1)]
                        drive = _plus(drive, area.bottom_up(image))
                else:
                    below = prev[k - 1] if self.synchronous else cur[k - 1]
                    if below is not None:
                        drive = _plus(drive, area.bottom_up(F.max_pool2d(below, 2)))
                if t > 0 and area.lateral is not None:
                    drive = _plus(drive, area.lateral(prev[k]))
                if t > 0 and area.top_down is not None:
                    drive = _plus(drive, area.top_down(F.interpolate(prev[k + 1], size=sizes[k], mode="nearest")))
                if t > 0 and k == 0 and self.long_range is not None:
                    drive = _plus(drive, self.long_range(F.interpolate(prev[3], size=sizes[0], mode="bilinear",
                                                              align_corners=False)))
                if drive is None:  # nothing has reached this area yet
                    drive = images.new_zeros((n, self.widths[k], sizes[k][0], sizes[k][1]))
                cur[k] = F.relu(area.norm(drive, t))
                self.record(self.areas[k], t, cur[k])
            pooled = global_pool(cur[3])
            if self.cumulative_readout:
                pooled_sum = pooled if pooled_sum is None else pooled_sum + pooled
                pooled = pooled_sum / float(t + 1)
            logits.append(self.readout(pooled))
            prev = cur
        return logits


def _cortical_spec(connections, in_channels=1, num_classes=10, width=0, steps=0, unroll="default",
                   input_every_step=True, cumulative_readout=False, **_):
    lateral, topdown, long_range = "L" in connections, "T" in connections, "+" in connections
    w = width or 16
    return dict(lateral=lateral, topdown=topdown, long_range=long_range, synchronous=unroll == "synchronous",
                input_every_step=input_every_step, cumulative_readout=cumulative_readout,
                steps=(steps or 4) if (lateral or topdown) else 1, widths=[w, 2 * w, 4 * w, 8 * w],
                kernels=[3, 3, 3, 3], in_channels=in_channels, num_classes=num_classes)


def _parameters(spec):
    """Parameter count of a CorticalNet spec, without building it (as count_parameters would)."""
    n, ws, ks = 0, spec["widths"], spec["kernels"]
    for k in range(4):
        cin = spec["in_channels"] if k == 0 else ws[k - 1]
        n += cin * ws[k] * ks[k] ** 2
        if spec["lateral"]:
            n += ws[k] * ws[k] * 9
        if spec["topdown"] and k < 3:
            n += ws[k + 1] * ws[k] * 9
        n += 2 * ws[k] * spec["steps"]
    if spec["long_range"]:
        n += ws[3] * ws[0]
    return n + ws[3] * spec["num_classes"] + spec["num_classes"]


def _larger_kernels(**o):
    """cortical_b_k: bottom-up kernels (odd, 3-9) chosen per area so that the parameter count is
    closest to BLT's (models/cortical.cpp larger_kernels)."""
    target = _parameters(_cortical_spec("BLT", **o))
    s = _cortical_spec("B", **o)
    base = _parameters(s)
    fan = [(s["in_channels"] if k == 0 else s["widths"][k - 1]) * s["widths"][k] for k in range(4)]
    best = None
    for a in (3, 5, 7, 9):
        for b in (3, 5, 7, 9):
            for c in (3, 5, 7, 9):
                for d in (3, 5, 7, 9):
                    ks = [a, b, c, d]
                    p = base + sum(fan[k] * (ks[k] ** 2 - 9) for k in range(4))
                    if best is None or abs(p - target) < best:
                        best, s["kernels"] = abs(p - target), ks
    return s


def _more_features(**o):
    """cortical_b_f: every width scaled by one factor, found by bisection, so that the parameter
    count is closest to BLT's (models/cortical.cpp more_features)."""
    target = _parameters(_cortical_spec("BLT", **o))
    s = _cortical_spec("B", **o)
    base = list(s["widths"])

    def scaled(f):
        c = dict(s)
        c["widths"] = [max(1, math.floor(b * f + 0.5)) for b in base]  # std::llround
        return c

    lo, hi = 1.0, 8.0
    for _ in range(30):
        mid = (lo + hi) / 2
        if _parameters(scaled(mid)) < target:
            lo = mid
        else:
            hi = mid
    return scaled(hi)


# ---- CORnet (models/cornet.cpp; names as dicarlolab/CORnet)

CORNET_WIDTHS = (64, 128, 256, 512)


def feed_forward_areas(model, images):
    """CORnet-Z and CORnet-S: each area once, bottom-up, then the decoder; one read-out."""
    x = images
    for name in model.areas:
        x = getattr(model, name)(x)
        model.record(name, 0, x)
    return [model.decoder(x)]


class Decoder(nn.Module):
    def __init__(self, cin, classes):
        super().__init__()
        self.linear = nn.Linear(cin, classes)

    def forward(self, x):
        return self.linear(global_pool(x))


class ZBlock(nn.Module):
    def __init__(self, cin, cout, k, stride):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)

    def forward(self, x):
        return F.max_pool2d(F.relu(self.conv(x)), 3, 2, 1)


class CORnetZ(VisionModel):
    areas = ("V1", "V2", "V4", "IT")

    def __init__(self, in_channels=3, num_classes=1000, **_):
        super().__init__()
        cin = in_channels
        for k, name in enumerate(self.areas):
            self.add_module(name, ZBlock(cin, CORNET_WIDTHS[k], 7 if k == 0 else 3, 2 if k == 0 else 1))
            cin = CORNET_WIDTHS[k]
        self.decoder = Decoder(cin, num_classes)

    def forward(self, images, steps=None):
        return feed_forward_areas(self, images)


class RBlock(nn.Module):
    def __init__(self, cin, cout, k, stride):
        super().__init__()
        self.out, self.k, self.stride = cout, k, stride
        self.conv_input = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)
        self.norm_input = nn.GroupNorm(32, cout)
        self.conv1 = conv(cout, cout, 3)
        self.norm1 = nn.GroupNorm(32, cout)

    def out_size(self, size):
        p = self.k // 2
        return (conv_out(size[0], self.k, self.stride, p), conv_out(size[1], self.k, self.stride, p))

    def forward(self, inp, state, n, input_size, like):
        if inp is not None:
            drive = F.relu(self.norm_input(self.conv_input(inp)))
        else:  # no input has reached the area yet: the zeros a zero input would produce
            drive = like.new_zeros((n, self.out) + self.out_size(input_size))
        skip = drive + state if state is not None else drive
        return F.relu(self.norm1(self.conv1(skip)))


class CORnetR(VisionModel):
    """CORnet-R (sequential) and CORnet-RT (synchronous: every area reads step t-1)."""

    recurrent = True
    areas = ("V1", "V2", "V4", "IT")

    def __init__(self, synchronous=False, in_channels=3, num_classes=1000, steps=0, **_):
        super().__init__()
        self.synchronous = synchronous
        self.default_steps = steps or 5
        cin = in_channels
        for k, name in enumerate(self.areas):
            self.add_module(name, RBlock(cin, CORNET_WIDTHS[k], 7 if k == 0 else 3, 4 if k == 0 else 2))
            cin = CORNET_WIDTHS[k]
        self.decoder = Decoder(cin, num_classes)
        init_resnet_weights(self)

    def forward(self, images, steps=None, step_inputs=None):
        steps = steps or self.default_steps
        n = images.shape[0]
        blocks = [getattr(self, a) for a in self.areas]
        in_sizes = [(images.shape[2], images.shape[3])]
        for k in range(3):
            in_sizes.append(blocks[k].out_size(in_sizes[k]))
        outputs, states, logits = [None] * 4, [None] * 4, []
        for t in range(steps):
            previous = list(outputs)
            for k in range(4):
                inp = None
                if k == 0:
                    inp = images if not step_inputs else step_inputs[min(t, len(step_inputs) - 1)]
                elif t > 0:
                    inp = previous[k - 1] if self.synchronous else outputs[k - 1]
                outputs[k] = states[k] = blocks[k](inp, states[k], n, in_sizes[k], images)
                self.record(self.areas[k], t, outputs[k])
            logits.append(self.decoder(outputs[3]))
        return logits


class V1S(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, 64, 7, stride=2, padding=3, bias=False)
        self.norm1 = nn.BatchNorm2d(64)
        self.conv2 = conv(64, 64, 3)
        self.norm2 = nn.BatchNorm2d(64)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.norm1(self.conv1(x))), 3, 2, 1)
        return F.relu(self.norm2(self.conv2(x)))


class SBlock(nn.Module):
    """CORnet-S area: a bottleneck (x4) repeated `times` with shared convs and a batch norm per
    repetition; the first repetition downsamples (stride-2 conv2, strided 1x1 skip)."""

    def __init__(self, cin, cout, times):
        super().__init__()
        self.times = times
        self.conv_input = conv(cin, cout, 1)
        self.skip = conv(cout, cout, 1, 2)
        self.norm_skip = nn.BatchNorm2d(cout)
        self.conv1 = conv(cout, cout * 4, 1)
        self.conv2 = conv(cout * 4, cout * 4, 3)
        self.conv3 = conv(cout * 4, cout, 1)
        for t in range(times):
            self.add_module("norm1_%d" % t, nn.BatchNorm2d(cout * 4))
            self.add_module("norm2_%d" % t, nn.BatchNorm2d(cout * 4))
            self.add_module("norm3_%d" % t, nn.BatchNorm2d(cout))

    def forward(self, inp):
        x = self.conv_input(inp)
        for t in range(self.times):
            residual = self.norm_skip(self.skip(x)) if t == 0 else x
            x = F.relu(getattr(self, "norm1_%d" % t)(self.conv1(x)))
            x = F.conv2d(x, self.conv2.weight, None, 2, 1) if t == 0 else self.conv2(x)
            x = F.relu(getattr(self, "norm2_%d" % t)(x))
            x = getattr(self, "norm3_%d" % t)(self.conv3(x))
            x = F.relu(x + residual)
        return x


class CORnetS(VisionModel):
    recurrent = True
    reads_out_every_step = False
    areas = ("V1", "V2", "V4", "IT")

    def __init__(self, in_channels=3, num_classes=1000, **_):
        super().__init__()
        self.V1 = V1S(in_channels)
        self.V2 = SBlock(64, 128, 2)
        self.V4 = SBlock(128, 256, 4)
        self.IT = SBlock(256, 512, 2)
        self.decoder = Decoder(512, num_classes)
        init_resnet_weights(self)

    def forward(self, images, steps=None):
        return feed_forward_areas(self, images)


# ---- The registry (models/registry.cpp): name -> factory(**options)

def _resnet(blocks, widths, bottleneck, cifar, default_width):
    def make(in_channels=1, num_classes=10, image_size=28, width=0, shortcut="B", stem="auto", **_):
        w = width or default_width
        return ResNet(blocks, [w * m for m in widths], bottleneck, cifar, in_channels, num_classes, image_size,
                      shortcut, stem)
    return make


def _cortical(connections):
    return lambda **o: CorticalNet(**_cortical_spec(connections, **o))


_REGISTRY = {}
for _depth in (20, 32, 44, 56, 110):
    _n = (_depth - 2) // 6
    _REGISTRY["resnet%d" % _depth] = _resnet([_n] * 3, [1, 2, 4], False, True, 16)
_REGISTRY["resnet18"] = _resnet([2, 2, 2, 2], [1, 2, 4, 8], False, False, 64)
_REGISTRY["resnet34"] = _resnet([3, 4, 6, 3], [1, 2, 4, 8], False, False, 64)
_REGISTRY["resnet50"] = _resnet([3, 4, 6, 3], [1, 2, 4, 8], True, False, 64)
_REGISTRY["shared_resnet"] = lambda **o: SharedResNet(False, **o)
_REGISTRY["shared_resnet_all"] = lambda **o: SharedResNet(True, **o)
for _name, _conn in (("cortical_b", "B"), ("cortical_bl", "BL"), ("cortical_bt", "BT"), ("cortical_blt", "BLT"),
                     ("cortical_blt_plus", "BLT+")):
    _REGISTRY[_name] = _cortical(_conn)
_REGISTRY["cortical_b_k"] = lambda **o: CorticalNet(**_larger_kernels(**o))
_REGISTRY["cortical_b_f"] = lambda **o: CorticalNet(**_more_features(**o))
_REGISTRY["cornet_z"] = lambda **o: CORnetZ(**o)
_REGISTRY["cornet_r"] = lambda **o: CORnetR(False, **o)
_REGISTRY["cornet_rt"] = lambda **o: CORnetR(True, **o)
_REGISTRY["cornet_s"] = lambda **o: CORnetS(**o)


def list_models():
    """The registered model names, in `ventral models` order."""
    return list(_REGISTRY)


def create(name, in_channels=1, num_classes=10, image_size=28, width=0, steps=0, unroll="default",
           input_every_step=True, cumulative_readout=False, shortcut="B", stem="auto"):
    """Builds a registered model with ventral's defaults (0 / "default" = the model's own)."""
    if name not in _REGISTRY:
        raise ValueError("unknown model '%s' (valid: %s)" % (name, ", ".join(_REGISTRY)))
    model = _REGISTRY[name](in_channels=in_channels, num_classes=num_classes, image_size=image_size, width=width,
                            steps=steps, unroll=unroll, input_every_step=input_every_step,
                            cumulative_readout=cumulative_readout, shortcut=shortcut, stem=stem)
    model.name = name
    return model
