"""VGG with BatchNorm for 32×32 inputs (Simonyan & Zisserman 2015), as in the CIFAR KD benchmarks:
conv-BN-ReLU stacks with max-pools, global average pool, one linear classifier.

vgg8 (CRD's VGG-8: one conv per stage), vgg11 (configuration A), vgg13 (configuration B).
Input (N, C, H, W) -> logits (N, K).
"""
from torch import nn

from dfkd.models import MODELS

_CFGS = {
    "vgg8": [64, "M", 128, "M", 256, "M", 512, "M", 512, "M"],
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
}


class VGG(nn.Module):
    def __init__(self, cfg, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        layers, cin = [], in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1, bias=False), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                cin = v
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(self.features(x))


def _register(name: str):
    @MODELS.register(name)
    def build(num_classes: int, in_channels: int) -> VGG:
        return VGG(_CFGS[name], num_classes, in_channels)


for _n in _CFGS:
    _register(_n)
