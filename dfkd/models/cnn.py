"""Small CNNs for the embedded digits data (16×16 by default; any size works).

conv-BN-ReLU ×2, max-pool, conv-BN-ReLU ×2, global average pool, linear.
`cnn` (width 32, ~66k parameters) is the default digits teacher; `cnn_small` (width 8, ~4.5k
parameters) the default student.
"""
from torch import nn

from dfkd.models import MODELS


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 32):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            *_conv_bn(in_channels, w), *_conv_bn(w, w), nn.MaxPool2d(2),
            *_conv_bn(w, 2 * w), *_conv_bn(2 * w, 2 * w),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.fc = nn.Linear(2 * w, num_classes)

    def forward(self, x):
        return self.fc(self.features(x))


@MODELS.register("cnn")
def cnn(num_classes: int, in_channels: int) -> SmallCNN:
    return SmallCNN(num_classes, in_channels, width=32)


@MODELS.register("cnn_small")
def cnn_small(num_classes: int, in_channels: int) -> SmallCNN:
    return SmallCNN(num_classes, in_channels, width=8)
