"""Retrieval and zero-shot metrics on hand-ranked toy cases and a naive per-query reference.

Ties count against the model: a candidate scoring equal to the ground truth is ranked above it.
"""

import pytest
import torch

from trainables.metrics import class_embeddings, retrieval_metrics, zeroshot_topk

# 3 images, 5 captions: image 0 -> captions 0, 1; image 1 -> 2; image 2 -> 3, 4
IMG2TXT = [[0, 1], [2], [3, 4]]
TXT2IMG = torch.tensor([0, 0, 1, 2, 2])
SIMS = torch.tensor(
    [
        [0.1, 0.9, 0.5, 0.2, 0.3],  # best GT 0.9, nothing above: rank 0
        [0.7, 0.1, 0.4, 0.4, 0.8],  # GT 0.4; 0.7, 0.4 (tie), 0.8: rank 3
        [0.2, 0.6, 0.6, 0.5, 0.1],  # best GT 0.5; 0.6, 0.6: rank 2
    ]
)
# text->image ranks per column: [2, 0, 2, 0, 2]


def test_retrieval_hand_ranked():
    metrics = retrieval_metrics(SIMS, TXT2IMG, IMG2TXT)
    expected = {
        "txt_r1": 100 / 3,
        "txt_r5": 100.0,
        "txt_r10": 100.0,
        "img_r1": 40.0,
        "img_r5": 100.0,
        "img_r10": 100.0,
        "txt_r_mean": (100 / 3 + 200) / 3,
        "img_r_mean": 80.0,
        "r_mean": ((100 / 3 + 200) / 3 + 80) / 2,
    }
    assert metrics.keys() == expected.keys()
    assert metrics == pytest.approx(expected)


def test_retrieval_identical_embeddings_are_not_perfect():
    metrics = retrieval_metrics(torch.ones(3, 3), torch.arange(3), [[0], [1], [2]])
    assert metrics["txt_r1"] == metrics["img_r1"] == 0.0
    assert metrics["txt_r5"] == metrics["img_r5"] == 100.0


def naive_ranks(sims, txt2img, img2txt):
    image_ranks = []
    for i, captions in enumerate(img2txt):
        best = max(sims[i][t] for t in captions)
        others = [t for t in range(len(sims[i])) if t not in captions]
        image_ranks.append(sum(sims[i][t] >= best for t in others))
    text_ranks = []
    for t, truth in enumerate(txt2img):
        others = [i for i in range(len(sims)) if i != truth]
        text_ranks.append(sum(sims[i][t] >= sims[truth][t] for i in others))
    return image_ranks, text_ranks


def test_retrieval_matches_naive_ranks_with_ties_and_ragged_captions():
    generator = torch.Generator().manual_seed(0)
    n_images, n_texts = 12, 30
    sims = torch.randint(0, 6, (n_images, n_texts), generator=generator).float()  # many ties
    extra = torch.randint(0, n_images, (n_texts - n_images,), generator=generator)
    txt2img = torch.cat([torch.arange(n_images), extra])  # every image has >= 1 caption
    img2txt = [[t for t in range(n_texts) if txt2img[t] == i] for i in range(n_images)]

    image_ranks, text_ranks = naive_ranks(sims.tolist(), txt2img.tolist(), img2txt)
    metrics = retrieval_metrics(sims, txt2img, img2txt)
    for k in (1, 5, 10):
        assert metrics[f"txt_r{k}"] == pytest.approx(
            100 * sum(r < k for r in image_ranks) / n_images
        )
        assert metrics[f"img_r{k}"] == pytest.approx(100 * sum(r < k for r in text_ranks) / n_texts)
    assert 0 < metrics["txt_r5"] < 100
    assert 0 < metrics["img_r10"] < 100


def test_zeroshot_topk_with_ties():
    logits = torch.tensor(
        [
            [0.9, 0.1, 0.0],  # label 0: rank 0
            [0.5, 0.5, 0.2],  # label 1: tie with class 0, rank 1
            [0.1, 0.2, 0.3],  # label 0: rank 2
            [0.3, 0.1, 0.2],  # label 2: rank 1
        ]
    )
    labels = torch.tensor([0, 1, 0, 2])
    assert zeroshot_topk(logits, labels) == {
        "zs_top1": 25.0,
        "zs_top3": 100.0,
        "zs_top5": 100.0,
        "zs_top10": 100.0,
    }
    assert zeroshot_topk(logits, labels, ks=(2,)) == {"zs_top2": 75.0}


def test_class_embeddings_average_normalised_prompts():
    vectors = {
        "a cat.": [3.0, 0.0],
        "the cat!": [0.0, 5.0],
        "a dog.": [2.0, 2.0],
        "the dog!": [-1.0, 1.0],
    }
    calls = []

    def encode_text(prompts):
        calls.append(prompts)
        return torch.tensor([vectors[p] for p in prompts])

    embeddings = class_embeddings(encode_text, ["cat", "dog"], ["a {}.", "the {}!"])
    root_half = 0.5**0.5
    torch.testing.assert_close(embeddings, torch.tensor([[root_half, root_half], [0.0, 1.0]]))
    assert calls == [["a cat.", "the cat!"], ["a dog.", "the dog!"]]
