"""Per-epoch evaluation: retrieval recall@K on the retrieval set, zero-shot top-K.

The towers run under the trial's autocast (``precision``), as in training; similarities are
computed in float32.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch.utils.data import DataLoader

from trainables.data import ImageList
from trainables.metrics import class_embeddings, retrieval_metrics, zeroshot_topk
from trainables.model import BimodalModel
from trainables.precision import MixedPrecision
from trainables.tokenizer import CaptionTokenizer
from trainables.trial_data import TrialData


def _encode_images(model: BimodalModel, images: ImageList, batch_size: int):
    """(n, d) float32 image embeddings and (n,) labels (-1 where the list has none)."""
    device = next(model.parameters()).device
    loader = DataLoader(
        images, batch_size=batch_size, shuffle=False, pin_memory=device.type == "cuda"
    )
    embeddings, labels = [], []
    for batch in loader:
        embeddings.append(model.encode_image(batch["image"].to(device, non_blocking=True)).float())
        labels.append(batch["label"])
    return torch.cat(embeddings), torch.cat(labels)


def _text_encoder(model: BimodalModel, tokenizer: CaptionTokenizer, batch_size: int):
    """A function mapping a list of texts to (n, d) float32 text embeddings."""

    device = next(model.parameters()).device

    def encode(texts: list[str]) -> torch.Tensor:
        chunks = []
        for start in range(0, len(texts), batch_size):
            ids, mask = tokenizer(texts[start : start + batch_size])
            chunks.append(model.encode_text(ids.to(device), mask.to(device)).float())
        return torch.cat(chunks)

    return encode


@torch.no_grad()
def evaluate(
    model: BimodalModel, data: TrialData, batch_size: int, precision: MixedPrecision | None = None
) -> dict[str, float]:
    """The retrieval and zero-shot metrics of :mod:`trainables.metric_names`
    (``RETRIEVAL_METRICS``: txt_r*, img_r*, their means; ``ZEROSHOT_METRICS``: zs_top*), in
    percent, with the towers under ``precision``'s autocast (None: float32)."""
    was_training = model.training
    model.eval()
    encode_text = _text_encoder(model, data.tokenizer, batch_size)
    with precision.autocast() if precision else nullcontext():
        image_emb, _ = _encode_images(model, data.retrieval_images, batch_size)
        text_emb = encode_text(data.retrieval_texts)
        zs_emb, zs_labels = _encode_images(model, data.zeroshot_images, batch_size)
        classes = class_embeddings(encode_text, data.zeroshot.classes, data.zeroshot.templates)
    metrics = retrieval_metrics((image_emb @ text_emb.T).cpu(), data.txt2img, data.img2txt)
    metrics.update(zeroshot_topk((zs_emb @ classes.T).cpu(), zs_labels))
    model.train(was_training)
    return metrics
