"""CIFAR ResNets.

- resnet8/14/20/32/44/56/110 (He et al. 2016, §4.2): 3 stages of 16/32/64 channels, 6n+2 layers,
  basic blocks; projection shortcuts (1×1 conv + BN) where the shape changes.
- resnet8x4 / resnet32x4 (the 4×-wide variants of the CRD benchmark, Tian et al. 2020):
  stages of 64/128/256 after a 32-channel stem.
- resnet18 / resnet34: the CIFAR ResNet-18/34 of the DFKD papers (DFAD, CMI, Fast): a 3×3 stem
  without max-pool, 4 stages of 64–512 channels, [2,2,2,2] / [3,4,6,3] basic blocks.
Input (N, C, H, W) -> logits (N, K); global average pooling makes any H, W >= 8 work.
"""
from torch import nn

from dfkd.models import MODELS


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """Stem conv (stem channels) then one stage per entry of `widths`, `blocks[i]` blocks each;
    every stage after the first halves the resolution."""

    def __init__(self, blocks, widths, stem: int, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(stem), nn.ReLU(inplace=True))
        layers, cin = [], stem
        for i, (n, w) in enumerate(zip(blocks, widths)):
            stage = [BasicBlock(cin, w, 1 if i == 0 else 2)] + [BasicBlock(w, w) for _ in range(n - 1)]
            layers.append(nn.Sequential(*stage))
            cin = w
        self.stages = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.fc(self.pool(self.stages(self.stem(x))))


def _register_he(depth: int, name: str, widths=(16, 32, 64), stem: int = 16):
    n = (depth - 2) // 6

    @MODELS.register(name)
    def build(num_classes: int, in_channels: int) -> CifarResNet:
        return CifarResNet([n] * 3, widths, stem, num_classes, in_channels)


for _d in (8, 14, 20, 32, 44, 56, 110):
    _register_he(_d, f"resnet{_d}")
_register_he(8, "resnet8x4", widths=(64, 128, 256), stem=32)
_register_he(32, "resnet32x4", widths=(64, 128, 256), stem=32)


@MODELS.register("resnet18")
def resnet18(num_classes: int, in_channels: int) -> CifarResNet:
    return CifarResNet([2, 2, 2, 2], (64, 128, 256, 512), 64, num_classes, in_channels)


@MODELS.register("resnet34")
def resnet34(num_classes: int, in_channels: int) -> CifarResNet:
    return CifarResNet([3, 4, 6, 3], (64, 128, 256, 512), 64, num_classes, in_channels)
