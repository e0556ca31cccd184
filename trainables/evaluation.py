"""Per-epoch evaluation: retrieval recall@K on the retrieval set, zero-shot top-K."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from trainables.data import ImageList
from trainables.metrics import class_embeddings, retrieval_metrics, zeroshot_topk
from trainables.model import BimodalModel
from trainables.tokenizer import CaptionTokenizer
from trainables.trial_data import TrialData


def _encode_images(model: BimodalModel, images: ImageList, batch_size: int):
    """(n, d) image embeddings and (n,) labels (-1 where the list has none)."""
    loader = DataLoader(images, batch_size=batch_size, shuffle=False)
    device = next(model.parameters()).device
    embeddings, labels = [], []
    for batch in loader:
        embeddings.append(model.encode_image(batch["image"].to(device)))
        labels.append(batch["label"])
    return torch.cat(embeddings), torch.cat(labels)


def _text_encoder(model: BimodalModel, tokenizer: CaptionTokenizer, batch_size: int):
    """A function mapping a list of texts to (n, d) text embeddings."""

    device = next(model.parameters()).device

    def encode(texts: list[str]) -> torch.Tensor:
        chunks = []
        for start in range(0, len(texts), batch_size):
            ids, mask = tokenizer(texts[start : start + batch_size])
            chunks.append(model.encode_text(ids.to(device), mask.to(device)))
        return torch.cat(chunks)

    return encode


@torch.no_grad()
def evaluate(model: BimodalModel, data: TrialData, batch_size: int) -> dict[str, float]:
    """The retrieval and zero-shot metrics of :mod:`trainables.metric_names`
    (``RETRIEVAL_METRICS``: txt_r*, img_r*, their means; ``ZEROSHOT_METRICS``: zs_top*), in
    percent."""
    was_training = model.training
    model.eval()
    encode_text = _text_encoder(model, data.tokenizer, batch_size)

    image_emb, _ = _encode_images(model, data.retrieval_images, batch_size)
    sims = image_emb @ encode_text(data.retrieval_texts).T
    metrics = retrieval_metrics(sims.cpu(), data.txt2img, data.img2txt)

    zs_emb, zs_labels = _encode_images(model, data.zeroshot_images, batch_size)
    classes = class_embeddings(encode_text, data.zeroshot.classes, data.zeroshot.templates)
    metrics.update(zeroshot_topk((zs_emb @ classes.T).cpu(), zs_labels))

    model.train(was_training)
    return metrics
