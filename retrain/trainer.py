"""The default trainer: a deterministic Adam loop (with Hinton distillation) for any model returning (logits, embedding).

Needs the ``train`` extra (torch). Every fine-tune, distillation, pruning fine-tune and QAT
runs through ``fit`` unless a model registers its own ``trainer`` (then only the fine-tune
of retraining is the user's: compression's short fine-tunes stay on this recipe).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

# One intra-op thread: results do not depend on how many cores the machine has, and the
# 2-core hosts this runs on are shared with the server.
TRAIN_THREADS = 1


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
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
    return np.concatenate(logits), np.concatenate(embeddings)


def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in [0, 1] (NaN for an empty set)."""
    if len(labels) == 0:
        return float("nan")
    logits, _ = predict(model, images)
    return float((logits.argmax(axis=1) == labels).mean())
