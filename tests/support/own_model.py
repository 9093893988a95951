"""A model shiftwatch's code has never heard of, and its data: a small RGB CNN on coloured 48x48 digits.

The network is plain PyTorch with its own preprocessing (mean/std normalisation at 3x48x48);
the images are scikit-learn's digits drawn in a random colour on a random background colour at
56x56 (so the declared resize runs). ``rotated`` makes the drift: the same digits rotated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIDE = 56  # stored images are larger than the model input: the gateway's resize has work to do
INPUT_SPEC = {"shape": [3, 48, 48], "resize": "stretch", "channel_order": "rgb", "scale": "0..1",
              "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}  # fmt: skip
CLASS_NAMES = [str(i) for i in range(10)]
FACTORY = "tests.support.own_model:build"


def build(width: float = 1.0):
    """Three stride-2 conv+BN+ReLU blocks, a 3x3 average pool, a 32-d ReLU layer and a linear head (width scales the convs)."""
    from torch import nn

    c = max(2, round(16 * width))
    return nn.Sequential(
        nn.Conv2d(3, c, 3, stride=2, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
        nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.BatchNorm2d(2 * c), nn.ReLU(),
        nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1), nn.BatchNorm2d(2 * c), nn.ReLU(),
        nn.AdaptiveAvgPool2d(3), nn.Flatten(),
        nn.Linear(2 * c * 9, 32), nn.ReLU(),
        nn.Linear(32, 10),
    )  # fmt: skip


def build_with_softmax():
    """``build()`` with a softmax after the head (the same state_dict keys): probabilities, which the contract refuses."""
    from torch import nn

    model = build()
    model.append(nn.Softmax(dim=1))
    return model


def render(seed: int, n: int | None = None, rotation_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (N, 56, 56, 3), labels): digits in a random colour on a contrasting random background."""
    from skimage.transform import resize, rotate
    from sklearn.datasets import load_digits

    bunch = load_digits()
    rng = np.random.default_rng(seed)
    index = rng.permutation(len(bunch.target))[: n or len(bunch.target)]
    strokes = resize(bunch.images[index] / 16.0, (len(index), SIDE, SIDE), order=1, mode="edge", anti_aliasing=False)
    if rotation_deg:
        strokes = np.stack([rotate(s, rotation_deg * rng.choice((-1.0, 1.0)), order=1) for s in strokes])
    background = rng.uniform(0.0, 0.45, (len(index), 1, 1, 3))
    foreground = rng.uniform(0.55, 1.0, (len(index), 1, 1, 3))
    alpha = np.clip(strokes, 0.0, 1.0)[..., None]
    images = background * (1 - alpha) + foreground * alpha + rng.normal(0, 0.03, (len(index), SIDE, SIDE, 3))
    return np.round(np.clip(images, 0, 1) * 255).astype(np.uint8), bunch.target[index].astype(np.int64)


def write_reference(path: Path, seed: int = 0, n: int = 900) -> Path:
    images, labels = render(seed, n)
    np.savez(path, images=images, labels=labels)
    return path


def png(pixels: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def train_weights(path: Path, reference: Path, epochs: int = 6, seed: int = 0) -> Path:
    """The user's own training, before shiftwatch: fit on the reference set's train split, save a plain state_dict.

    (The split retraining uses: the evaluation gate's held-out reference images stay unseen.)
    """
    import torch

    from shiftwatch.retrain.contract import InputSpec
    from shiftwatch.retrain.contract_family import load_reference_set
    from shiftwatch.retrain.torch_contract import ContractModel
    from shiftwatch.retrain.trainer import TrainConfig, deterministic, fit

    train = load_reference_set(reference, InputSpec.from_dict(INPUT_SPEC)).train
    with deterministic(seed):
        module = build()
    fit(ContractModel(module), train.images, train.labels, TrainConfig(epochs=epochs, seed=seed))
    torch.save(module.state_dict(), path)
    return path
