"""The example digits CNN, registered through the model contract like any user's network.

A stride-2 3x3 stem, two 3x3 conv blocks with 2x2 max-pool, a 64-d ReLU embedding and a linear
head. It returns logits only: the contract taps the embedding as the head's input, as for any
model. ``build(width=...)`` is distillation's narrower student; pruning, QAT and PTQ are the
generic ones (torch-pruning, ``fake_quant``, ORT). The reference set is scikit-learn's digits at
32x32 (``shiftwatch.examples.digits:reference_set``), so nothing needs to be on disk.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from shiftwatch.examples.digits import IMAGE_SIZE, NUM_CLASSES
from shiftwatch.retrain.contract import InputSpec
from shiftwatch.retrain.contract_family import ContractFamily
from shiftwatch.retrain.model_contract import TorchContract
from shiftwatch.retrain.torch_contract import ContractModel
from shiftwatch.retrain.trainer import ProgressCallback, TrainConfig

FACTORY = "shiftwatch.examples.digits_cnn:build"
CONTRACT = TorchContract(FACTORY, reference_set="shiftwatch.examples.digits:reference_set")
EMBEDDING_DIM = 64
# Wide enough that the reference carries real compute (~9.6 M multiply-adds per image) for
# pruning and distillation to remove; still trains in ~25 s on one thread.
REFERENCE_CHANNELS = (32, 64, 128)


class DigitsCNN(nn.Module):
    """The network; the stem downsamples at once because the digits carry 8x8 pixels of information.

    A full-resolution first layer costs the most time (and int8 kernels handle its single
    input channel poorly) while adding no accuracy.
    """

    def __init__(self, channels: tuple[int, int, int] = REFERENCE_CHANNELS, embedding_dim: int = EMBEDDING_DIM,
                 num_classes: int = NUM_CLASSES) -> None:  # fmt: skip
        super().__init__()
        c1, c2, c3 = (int(c) for c in channels)
        self.conv1 = nn.Conv2d(1, c1, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.conv3 = nn.Conv2d(c2, c3, 3, padding=1)
        spatial = IMAGE_SIZE // 8  # stride-2 stem and two 2x2 pools
        self.embed = nn.Linear(c3 * spatial * spatial, embedding_dim)
        self.head = nn.Linear(embedding_dim, num_classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(image))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.max_pool2d(F.relu(self.conv3(x)), 2)
        logits: torch.Tensor = self.head(F.relu(self.embed(torch.flatten(x, 1))))
        return logits


def build(width: float = 1.0) -> DigitsCNN:
    """The factory the contract names: channels scaled by ``width`` (0.5: distillation's student), embedding kept."""
    if not 0.0 < width <= 1.0:
        raise ValueError("width must be in (0, 1]")
    c1, c2, c3 = (max(2, round(c * width)) for c in REFERENCE_CHANNELS)
    return DigitsCNN((c1, c2, c3))


def family() -> ContractFamily:
    """The digits CNN as retraining sees it: its contract and the 1x32x32 gray, 0..1 input (``InputSpec()``)."""
    return ContractFamily(CONTRACT, InputSpec())


def train_reference(seed: int = 0, config: TrainConfig | None = None, progress: ProgressCallback | None = None) -> ContractModel:
    """The reference model: trained from scratch on the reference train split (``seed`` drives init and order)."""
    config = config or TrainConfig(seed=seed)
    digits = family()
    model = digits.new_model(seed)
    splits = digits.reference()
    digits.train(model, splits.train.images, splits.train.labels, config, progress=progress)
    return model
