"""Evaluation metrics: retrieval recall@K and zero-shot top-k accuracy (reference losses.md §9).

Ranks are pessimistic: a candidate that ties with the ground truth counts as ranked above it, so
identical (collapsed) embeddings score as badly as possible instead of 100%. All values are
percentages, named as in DESIGN.md (``txt_r*`` = image→text, ``img_r*`` = text→image).
"""

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from trainables.metric_names import RECALL_KS, ZEROSHOT_KS


def retrieval_metrics(
    sims: Tensor, txt2img: Tensor, img2txt: Sequence[Sequence[int]]
) -> dict[str, float]:
    """Recall@{1,5,10} in both directions and their means.

    Args:
        sims: (n_images, n_texts) similarities, image i against caption t.
        txt2img: (n_texts,) long, the ground-truth image of each caption.
        img2txt: per image, the indices of its ground-truth captions (ragged).

    Returns:
        ``txt_r1, txt_r5, txt_r10`` (image→text: rank of image i = number of non-ground-truth
        captions scoring >= its best ground-truth caption), ``img_r1, img_r5, img_r10``
        (text→image: rank = number of other images scoring >= the ground-truth image),
        ``txt_r_mean``, ``img_r_mean`` (means over K) and ``r_mean`` (mean of the two).
    """
    image_ranks = _image_to_text_ranks(sims, _caption_mask(img2txt, sims.shape))
    text_ranks = _text_to_image_ranks(sims, txt2img.to(sims.device))
    metrics = {f"txt_r{k}": _percent_below(image_ranks, k) for k in RECALL_KS}
    metrics |= {f"img_r{k}": _percent_below(text_ranks, k) for k in RECALL_KS}
    metrics["txt_r_mean"] = sum(metrics[f"txt_r{k}"] for k in RECALL_KS) / len(RECALL_KS)
    metrics["img_r_mean"] = sum(metrics[f"img_r{k}"] for k in RECALL_KS) / len(RECALL_KS)
    metrics["r_mean"] = (metrics["txt_r_mean"] + metrics["img_r_mean"]) / 2
    return metrics


def zeroshot_topk(
    logits: Tensor, labels: Tensor, ks: Sequence[int] = ZEROSHOT_KS
) -> dict[str, float]:
    """Top-k accuracy ``zs_top{k}`` (percent) of (n, C) class ``logits`` for (n,) ``labels``.

    Rank of a sample = number of other classes with logit >= the true class's logit; a sample
    counts for k when its rank < k (so k >= C gives 100).
    """
    true_logit = logits.gather(1, labels.to(logits.device)[:, None])
    ranks = (logits >= true_logit).sum(dim=1) - 1
    return {f"zs_top{k}": _percent_below(ranks, k) for k in ks}


@torch.no_grad()
def class_embeddings(
    encode_text: Callable[[list[str]], Tensor], classes: Sequence[str], templates: Sequence[str]
) -> Tensor:
    """(C, d) zero-shot classifier: per class, the re-normalised mean of its L2-normalised
    prompt embeddings ``encode_text([template.format(c) for template in templates])``."""
    prompts_mean = [
        F.normalize(encode_text([template.format(c) for template in templates]), dim=-1).mean(0)
        for c in classes
    ]
    return F.normalize(torch.stack(prompts_mean), dim=-1)


def _caption_mask(img2txt: Sequence[Sequence[int]], shape: torch.Size) -> Tensor:
    """(n_images, n_texts) bool, True where caption t is a ground truth of image i."""
    lengths = torch.tensor([len(captions) for captions in img2txt])
    rows = torch.repeat_interleave(torch.arange(len(img2txt)), lengths)
    cols = torch.tensor([t for captions in img2txt for t in captions], dtype=torch.long)
    mask = torch.zeros(shape, dtype=torch.bool)
    mask[rows, cols] = True
    return mask


def _image_to_text_ranks(sims: Tensor, is_caption: Tensor) -> Tensor:
    """(n_images,) number of non-ground-truth captions scoring >= the best ground truth."""
    is_caption = is_caption.to(sims.device)
    best = sims.masked_fill(~is_caption, float("-inf")).amax(dim=1, keepdim=True)
    return ((sims >= best) & ~is_caption).sum(dim=1)


def _text_to_image_ranks(sims: Tensor, txt2img: Tensor) -> Tensor:
    """(n_texts,) number of other images scoring >= the ground-truth image."""
    truth = sims[txt2img, torch.arange(sims.shape[1], device=sims.device)]
    return (sims >= truth).sum(dim=0) - 1


def _percent_below(ranks: Tensor, k: int) -> float:
    return 100.0 * (ranks < k).float().mean().item()
