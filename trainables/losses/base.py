"""The contract between a trial and a loss (DESIGN.md, "Contracts").

A loss is a :class:`ContrastiveLoss`. The trial calls it as
``loss_fn(image_emb, text_emb, index, *, epoch=0, image_aug_emb=None, text_aug_emb=None)``
with this process's L2-normalised (B, d) embeddings and the (B,) dataset indices of its pairs.
:meth:`ContrastiveLoss.forward` checks the inputs once for every loss, passes each tensor through
the loss's :class:`FeatureGather` and hands the result to the loss as one :class:`PairBatch`;
the loss's :meth:`~ContrastiveLoss.compute` returns a :class:`LossOutput`.

Global columns, local rows: with one process the gather is the identity (:data:`SINGLE_PROCESS`).
A data-parallel trial installs a gather that concatenates the embeddings (with gradient) and the
indices of every process in rank order, so ``PairBatch.image`` etc. are the global batch of
``B·W`` rows and ``PairBatch.local_rows`` names this process's rows. A loss computed on the whole
gathered batch then has the same value, per-sample state and gradient on every process as on one
process with the global batch (the full-matrix form). Either way the gather lives here, not in
the losses.

The local-loss form (``local_loss = True``; every loss has one): each
process computes the anchors of its own rows against all N columns, an (N/W, N) slice of every
similarity matrix instead of (N, N), and averages over its anchors; the mean of these W losses
is the full-matrix loss, and so is the gradient after DDP's average (:class:`AllGather` sums
the gradient of every rank's loss). Each process then updates the per-sample state of its own
anchors only, and :meth:`ContrastiveLoss.forward` all-gathers those entries so that the state
stays identical on every process.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import torch
from torch import Tensor, nn


class FeatureGather(Protocol):
    """How a loss sees the batches of every data-parallel process.

    ``__call__`` maps this process's (B, ...) tensor to the (B·W, ...) concatenation over the W
    processes in rank order (keeping the gradient path to the local rows); ``local_rows(B)`` is
    the slice of this process's rows in that concatenation.
    """

    def __call__(self, tensor: Tensor) -> Tensor: ...

    def local_rows(self, batch_size: int) -> slice: ...


class _SingleProcess:
    """The gather of a trial on one process: every row is local."""

    def __call__(self, tensor: Tensor) -> Tensor:
        return tensor

    def local_rows(self, batch_size: int) -> slice:
        return slice(0, batch_size)


SINGLE_PROCESS: FeatureGather = _SingleProcess()


@dataclass(frozen=True)
class PairBatch:
    """The embedded pairs a loss sees: (N, d) global rows (N = B on one process), L2-normalised.

    ``image`` e_i and ``text`` f_i are the pair's embeddings, ``index`` (N,) its dataset index
    (distinct within a batch), ``image_aug`` x'_i and ``text_aug`` t'_i the augmented views
    (present exactly when the loss ``needs_views``), ``local_rows`` the rows whose anchors this
    process computes: every row in the full-matrix form, its own rows in the local-loss form.
    """

    image: Tensor
    text: Tensor
    index: Tensor
    epoch: int = 0
    image_aug: Tensor | None = None
    text_aug: Tensor | None = None
    local_rows: slice = field(default_factory=lambda: slice(None))

    @property
    def size(self) -> int:
        """N, the number of pairs."""
        return self.image.shape[0]

    @property
    def anchor_rows(self) -> slice:
        """The rows whose anchors this process computes, as a slice with a start: all N rows
        (full-matrix form) or ``local_rows`` (local-loss form)."""
        return slice(*self.local_rows.indices(self.size)[:2])

    @property
    def all_rows(self) -> bool:
        """Whether this process computes every anchor (the full-matrix form)."""
        rows = self.anchor_rows
        return rows.start == 0 and rows.stop == self.size

    def views(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(x, x', t, t'): the four views of a loss that ``needs_views``."""
        if self.image_aug is None or self.text_aug is None:
            raise ValueError("this batch has no augmented views")
        return self.image, self.image_aug, self.text, self.text_aug


@dataclass(frozen=True)
class LossOutput:
    """What a loss returns for one batch.

    ``loss``: the scalar to backpropagate (for the GCL family a surrogate whose value is ≈ 0 and
    whose gradient is the method's). ``objective``: a detached scalar estimate of the objective,
    reported as ``train_loss``. ``terms``: detached named scalars for logging (for example
    ``image_to_text``). Indexable by name, so ``output["loss"]`` works as for a dict.
    """

    loss: Tensor
    objective: Tensor
    terms: Mapping[str, Tensor] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Tensor:
        if name == "loss":
            return self.loss
        if name == "objective":
            return self.objective
        return self.terms[name]


class ContrastiveLoss(nn.Module, ABC):
    """Base class of every loss: the forward signature, the input checks and the gather.

    A subclass sets the class attributes ``name`` (its registry name, used in messages),
    ``needs_views`` (True: the trial must pass ``image_aug_emb`` and ``text_aug_emb``) and
    ``min_batch`` (2 for losses that need in-batch negatives), implements :meth:`compute`, and
    may override :meth:`optimizer_groups`. :meth:`compute` computes only the anchors
    ``batch.anchor_rows`` against all columns (the local-loss form; with every row it is the
    full-matrix form) and updates the state of those anchors only. Its per-sample state
    (u, b, τ, m, ...) is held in persistent buffers whose last dimension is ``num_samples``;
    :meth:`sample_state` lists them, and ``state_dict()`` checkpoints them. Constructor
    hyperparameters are keyword-only with defaults: those defaults are the loss's defaults
    (``loss_defaults``).
    """

    name: ClassVar[str]
    needs_views: ClassVar[bool] = False
    min_batch: ClassVar[int] = 1

    def __init__(self, num_samples: int) -> None:
        super().__init__()
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        self.num_samples = num_samples
        self.gather: FeatureGather = SINGLE_PROCESS
        self.local_loss = False

    def forward(
        self,
        image_emb: Tensor,
        text_emb: Tensor,
        index: Tensor,
        *,
        epoch: int = 0,
        image_aug_emb: Tensor | None = None,
        text_aug_emb: Tensor | None = None,
    ) -> LossOutput:
        """Check the inputs, gather them, and :meth:`compute` the loss (see the module)."""
        views = (image_emb, text_emb, image_aug_emb, text_aug_emb)
        if self.needs_views and (image_aug_emb is None or text_aug_emb is None):
            raise ValueError(
                f"{self.name} needs the augmented views image_aug_emb and text_aug_emb"
            )
        shapes = {tuple(v.shape) for v in views if v is not None}
        if len(shapes) != 1 or len(image_emb.shape) != 2:
            raise ValueError(
                f"{self.name}: the embeddings must share one shape (B, d), got {shapes}"
            )
        if index.shape != image_emb.shape[:1]:
            raise ValueError(
                f"{self.name}: index must have shape (B,) = ({image_emb.shape[0]},), "
                f"got {tuple(index.shape)}"
            )
        batch = PairBatch(
            image=self._global(image_emb),
            text=self._global(text_emb),
            index=self.gather(index),
            epoch=epoch,
            image_aug=None if image_aug_emb is None else self._global(image_aug_emb),
            text_aug=None if text_aug_emb is None else self._global(text_aug_emb),
            local_rows=self.gather.local_rows(image_emb.shape[0])
            if self.local_loss
            else slice(None),
        )
        if batch.size < self.min_batch:
            raise ValueError(
                f"{self.name} needs batches of at least {self.min_batch} pairs (in-batch negatives)"
            )
        output = self.compute(batch)
        if not batch.all_rows:
            self._share_sample_state(batch)
        return output

    @torch.no_grad()
    def _share_sample_state(self, batch: PairBatch) -> None:
        """Write every process's updated per-sample state of its anchors into every process's
        buffers (the local-loss form updates only this process's anchors)."""
        mine = batch.index[batch.anchor_rows]
        for buffer in self.sample_state().values():
            rows = buffer[..., mine].movedim(-1, 0).contiguous()  # (b, ...)
            buffer.index_copy_(-1, batch.index, self.gather(rows).movedim(0, -1))

    def _global(self, embeddings: Tensor) -> Tensor:
        """The gathered embeddings, half precision (from autocast towers) promoted to float32:
        the loss math runs in float32 (or float64) whatever the towers' precision."""
        if embeddings.dtype in (torch.float16, torch.bfloat16):
            embeddings = embeddings.float()
        return self.gather(embeddings)

    @abstractmethod
    def compute(self, batch: PairBatch) -> LossOutput:
        """The loss of ``batch``; updates the per-sample state of ``batch.index``."""

    def optimizer_groups(self, lr: float) -> list[dict]:
        """Parameter groups with settings of their own (e.g. a lower lr); the loss's other
        parameters join the optimizer at weight decay 0. None by default."""
        return []

    def sample_state(self) -> dict[str, Tensor]:
        """The per-sample state: each persistent buffer by its ``state_dict`` name, last
        dimension ``num_samples``."""
        persistent = self.state_dict(keep_vars=True)
        return {name: b for name, b in self.named_buffers() if name in persistent}
