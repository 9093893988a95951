"""The reference digits CNN (logits + 64-d embedding) and its deterministic training loop.

Needs the ``train`` extra (torch). The network returns two outputs because the collector
logs the penultimate-layer embedding next to every prediction. Channel widths are
constructor arguments so that structured pruning and distillation can build narrower
copies of the same architecture, and weights files carry their own shape (see
``load_weights``): a plain ``state_dict`` read back with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from shiftwatch.retrain.digits import IMAGE_SIZE, NUM_CLASSES, REFERENCE_SPLIT_SEED, split_digits

EMBEDDING_DIM = 64
# Wide enough that the reference carries real compute (~9.6 M multiply-adds per image) for
# pruning and distillation to remove; still trains in ~25 s on one thread.
REFERENCE_CHANNELS = (32, 64, 128)
# One intra-op thread: results do not depend on how many cores the machine has, and the
# 2-core hosts this runs on are shared with the server.
TRAIN_THREADS = 1


class DigitsCNN(nn.Module):
    """A stride-2 3x3 stem, two 3x3 conv blocks with 2x2 max-pool, a 64-d ReLU embedding and a linear head.

    The stem downsamples at once because the digits carry 8x8 pixels of information: a
    full-resolution first layer costs the most time (and int8 kernels handle its single
    input channel poorly) while adding no accuracy.
    """

    def __init__(
        self,
        channels: tuple[int, int, int] = REFERENCE_CHANNELS,
        embedding_dim: int = EMBEDDING_DIM,
        num_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__()
        self.channels = tuple(int(c) for c in channels)
        c1, c2, c3 = self.channels
        self.conv1 = nn.Conv2d(1, c1, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.conv3 = nn.Conv2d(c2, c3, 3, padding=1)
        spatial = IMAGE_SIZE // 8  # stride-2 stem and two 2x2 pools
        self.embed = nn.Linear(c3 * spatial * spatial, embedding_dim)
        self.head = nn.Linear(embedding_dim, num_classes)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.conv1(image))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.max_pool2d(F.relu(self.conv3(x)), 2)
        embedding = F.relu(self.embed(torch.flatten(x, 1)))
        return self.head(embedding), embedding

    @property
    def embedding_dim(self) -> int:
        return self.embed.out_features

    @property
    def num_classes(self) -> int:
        return self.head.out_features


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Hyperparameters of one training run; recorded with the run."""

    epochs: int = 12
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    # "onecycle": warm up to ``lr`` then cosine-anneal to ~0 over the run (Smith 2018), stepped per batch;
    # what a from-scratch network needs to converge in few epochs. "constant": ``lr`` throughout.
    schedule: Literal["constant", "onecycle"] = "constant"
    # Distillation only: weight of the soft-target loss against the label loss, and temperature.
    distill_alpha: float = 0.7
    distill_temperature: float = 4.0


@contextmanager
def deterministic(seed: int, threads: int = TRAIN_THREADS) -> Iterator[torch.Generator]:
    """Seed torch, pin the thread count and demand deterministic kernels for the duration."""
    previous_threads = torch.get_num_threads()
    previous_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    try:
        yield torch.Generator().manual_seed(seed)
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_det)


ProgressCallback = Callable[[int, int, float], None]  # (epoch done, epochs, mean loss)


def fit(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    config: TrainConfig,
    *,
    teacher_logits: np.ndarray | None = None,
    progress: ProgressCallback | None = None,
) -> list[float]:
    """Train ``model`` in place with Adam; returns the mean loss of each epoch.

    With ``teacher_logits`` the loss is Hinton et al.'s distillation loss: ``alpha`` x
    KL(teacher_T || student_T) x T² plus ``(1 - alpha)`` x cross-entropy on the labels.
    """
    x_all = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    y_all = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    t_all = None if teacher_logits is None else torch.from_numpy(np.asarray(teacher_logits, dtype=np.float32))
    losses: list[float] = []
    with deterministic(config.seed) as generator:
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        steps = config.epochs * -(-len(y_all) // config.batch_size)
        scheduler = (torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=steps)
                     if config.schedule == "onecycle" and steps > 0 else None)  # fmt: skip
        model.train()
        for epoch in range(config.epochs):
            order = torch.randperm(len(y_all), generator=generator)
            total, seen = 0.0, 0
            for start in range(0, len(order), config.batch_size):
                idx = order[start : start + config.batch_size]
                logits, _ = model(x_all[idx])
                loss = F.cross_entropy(logits, y_all[idx])
                if t_all is not None:
                    temp = config.distill_temperature
                    soft = F.kl_div(
                        F.log_softmax(logits / temp, dim=1),
                        F.log_softmax(t_all[idx] / temp, dim=1),
                        reduction="batchmean",
                        log_target=True,
                    )
                    loss = config.distill_alpha * soft * temp * temp + (1 - config.distill_alpha) * loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                total += float(loss.detach()) * len(idx)
                seen += len(idx)
            losses.append(total / max(seen, 1))
            if progress is not None:
                progress(epoch + 1, config.epochs, losses[-1])
        model.eval()
    return losses


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(logits, embeddings) of ``images`` as float32 numpy arrays, in eval mode."""
    model.eval()
    logits, embeddings = [], []
    for start in range(0, len(images), batch_size):
        out_logits, out_embedding = model(torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])))
        logits.append(out_logits.numpy())
        embeddings.append(out_embedding.numpy())
    if not logits:
        return np.zeros((0, NUM_CLASSES), np.float32), np.zeros((0, EMBEDDING_DIM), np.float32)
    return np.concatenate(logits), np.concatenate(embeddings)


def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in [0, 1] (NaN for an empty set)."""
    if len(labels) == 0:
        return float("nan")
    logits, _ = predict(model, images)
    return float((logits.argmax(axis=1) == labels).mean())


def train_reference(seed: int = 0, config: TrainConfig | None = None, progress: ProgressCallback | None = None) -> DigitsCNN:
    """The reference model: trained from scratch on the reference train split (``seed`` drives init and order)."""
    config = config or TrainConfig(seed=seed)
    splits = split_digits(REFERENCE_SPLIT_SEED)
    with deterministic(seed):
        model = DigitsCNN()
    fit(model, splits.train.images, splits.train.labels, config, progress=progress)
    return model


def save_weights(model: DigitsCNN, path: Path) -> None:
    """A plain state_dict of tensors: loadable with ``weights_only=True``, no pickled objects."""
    torch.save({name: tensor.detach().clone() for name, tensor in model.state_dict().items()}, path)


def load_weights(path: Path) -> DigitsCNN:
    """Rebuild a ``DigitsCNN`` from a weights file; channel widths come from the tensor shapes."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    return model_from_state(state)


def model_from_state(state: dict[str, torch.Tensor]) -> DigitsCNN:
    channels = (state["conv1.weight"].shape[0], state["conv2.weight"].shape[0], state["conv3.weight"].shape[0])
    model = DigitsCNN(channels, embedding_dim=state["embed.weight"].shape[0], num_classes=state["head.weight"].shape[0])
    model.load_state_dict(state)
    model.eval()
    return model
