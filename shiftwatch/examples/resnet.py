"""The realistic example model: ResNet-18 in plain PyTorch (He et al. 2016), for 3x96x96 inputs and up.

Shipped as an example of the model contract, not as something shiftwatch depends on: it is
registered like any user's network (``shiftwatch.examples.resnet:build``) and retrained,
pruned (torch-pruning follows its residual connections) and quantized by the generic path.
``width`` scales every stage's channels (1.0: 64-128-256-512, 11.2 M parameters).
"""

from __future__ import annotations

import torch
from torch import nn

FACTORY = "shiftwatch.examples.resnet:build"
INPUT_SPEC = {"shape": [3, 96, 96], "resize": "stretch", "channel_order": "rgb", "scale": "0..1",
              "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}  # fmt: skip


class BasicBlock(nn.Module):
    """Two 3x3 conv + BN, with a 1x1 projection on the shortcut when the shape changes."""

    def __init__(self, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or inputs != outputs:
            self.shortcut = nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        result: torch.Tensor = self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))
        return result


class ResNet18(nn.Module):
    """7x7/2 stem + 3x3/2 max pool, four stages of two blocks, global average pool, linear head."""

    def __init__(self, num_classes: int = 10, width: float = 1.0) -> None:
        super().__init__()
        widths = [max(8, round(c * width)) for c in (64, 128, 256, 512)]
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 7, 2, 3, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))  # fmt: skip
        blocks: list[nn.Module] = []
        inputs = widths[0]
        for stage, outputs in enumerate(widths):
            for index in range(2):
                blocks.append(BasicBlock(inputs, outputs, 2 if stage > 0 and index == 0 else 1))
                inputs = outputs
        self.stages = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inputs, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))
        return logits


def build(width: float = 1.0, num_classes: int = 10) -> ResNet18:
    return ResNet18(num_classes, width)


QUARTER_FACTORY = "shiftwatch.examples.resnet:build_quarter"


def build_quarter(width: float = 1.0, num_classes: int = 10) -> ResNet18:
    """ResNet-18 at a quarter of the channels (16-32-64-128, 0.70 M parameters): the width the bench and the demo use.

    A contract factory is called with no arguments, so this names that width; ``width`` scales
    from it (distillation's default student is ``build_quarter(width=0.5)``).
    """
    return ResNet18(num_classes, 0.25 * width)
