"""Wide ResNets WRN-d-k (Zagoruyko & Komodakis 2016): pre-activation basic blocks, 3 stages of
16k/32k/64k channels, (d − 4) / 6 blocks per stage, no dropout. Registered: wrn16_1, wrn16_2,
wrn40_1, wrn40_2. Input (N, C, H, W) -> logits (N, K).
"""
from torch import nn

from dfkd.models import MODELS


class PreActBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        o = self.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(o)
        o = self.conv2(self.relu(self.bn2(self.conv1(o))))
        return o + skip


class WideResNet(nn.Module):
    def __init__(self, depth: int, k: int, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError("WRN depth must be 6n + 4")
        n = (depth - 4) // 6
        widths = [16, 16 * k, 32 * k, 64 * k]
        self.stem = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        stages, cin = [], widths[0]
        for i, w in enumerate(widths[1:]):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(*[PreActBlock(cin if j == 0 else w, w, stride if j == 0 else 1)
                                          for j in range(n)]))
            cin = w
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.fc(self.head(self.stages(self.stem(x))))


def _register(depth: int, k: int):
    @MODELS.register(f"wrn{depth}_{k}")
    def build(num_classes: int, in_channels: int) -> WideResNet:
        return WideResNet(depth, k, num_classes, in_channels)


for _d, _k in ((16, 1), (16, 2), (40, 1), (40, 2)):
    _register(_d, _k)
