"""LeNet-5 and LeNet-5-half as used by DAFL (Chen et al. 2019) and DFAD (Fang et al. 2019) on MNIST.

Input (N, C, H, W) -> logits (N, K). The half model halves every width (6/16/120/84 -> 3/8/60/42).
The design takes 32 px: a smaller input is centred in a 32 x 32 field of zeros, as LeCun et al.
(1998) centred the 28-px MNIST digits (so MNIST at 28 px works as it is); a larger one works through
the adaptive average pool after conv3 (the identity at 32).
"""
import torch.nn.functional as F
from torch import nn

from dfkd.models import MODELS


class LeNet5(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, widths=(6, 16, 120, 84)):
        super().__init__()
        c1, c2, c3, f1 = widths
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 5), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.fc1 = nn.Sequential(nn.Linear(c3, f1), nn.ReLU(inplace=True))
        self.fc = nn.Linear(f1, num_classes)

    def forward(self, x):
        h, w = x.shape[-2:]
        if h < 32 or w < 32:  # centred in a 32 x 32 field (LeCun et al. 1998)
            dh, dw = max(0, 32 - h), max(0, 32 - w)
            x = F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
        return self.fc(self.fc1(self.features(x)))


@MODELS.register("lenet5")
def lenet5(num_classes: int, in_channels: int) -> LeNet5:
    return LeNet5(num_classes, in_channels)


@MODELS.register("lenet5_half")
def lenet5_half(num_classes: int, in_channels: int) -> LeNet5:
    return LeNet5(num_classes, in_channels, widths=(3, 8, 60, 42))
