"""LeNet-5 and LeNet-5-half as used by DAFL (Chen et al. 2019) and DFAD (Fang et al. 2019) on MNIST.

Input (N, C, 32, 32) -> logits (N, K). The half model halves every width (6/16/120/84 -> 3/8/60/42).
An adaptive average pool after conv3 makes other input sizes (>= 32) work and is the identity at 32.
"""
from torch import nn

from . import MODELS


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
        return self.fc(self.fc1(self.features(x)))


@MODELS.register("lenet5")
def lenet5(num_classes: int, in_channels: int) -> LeNet5:
    return LeNet5(num_classes, in_channels)


@MODELS.register("lenet5_half")
def lenet5_half(num_classes: int, in_channels: int) -> LeNet5:
    return LeNet5(num_classes, in_channels, widths=(3, 8, 60, 42))
