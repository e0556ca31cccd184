"""The demo's text tower is BERT: ``SmallBert`` (torch.nn parts) against ``transformers.BertModel``
with the same weights, on padded batches, in the training path (grad on) and the evaluation
path (no grad); and BERT's initialisation."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertModel

from trainables.towers.small import SmallBert

VOCAB, WIDTH, LAYERS, HEADS, LENGTH, PAD = 40, 16, 2, 4, 9, 0


def small_bert(seed: int = 0) -> SmallBert:
    torch.manual_seed(seed)
    return SmallBert(
        vocab_size=VOCAB,
        width=WIDTH,
        layers=LAYERS,
        heads=HEADS,
        max_length=LENGTH,
        pad_id=PAD,
        dropout=0.0,
    )


def reference_bert(small: SmallBert) -> BertModel:
    """A ``BertModel`` of the same sizes holding ``small``'s weights (token type 0 adds zero)."""
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=WIDTH,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=4 * WIDTH,
        max_position_embeddings=LENGTH,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=PAD,
        attn_implementation="eager",
    )
    bert = BertModel(config, add_pooling_layer=False)
    ours = small.state_dict()
    theirs = {
        "embeddings.word_embeddings.weight": ours["word_embeddings.weight"],
        "embeddings.position_embeddings.weight": ours["position_embeddings.weight"],
        "embeddings.token_type_embeddings.weight": torch.zeros(2, WIDTH),
        "embeddings.LayerNorm.weight": ours["embedding_norm.weight"],
        "embeddings.LayerNorm.bias": ours["embedding_norm.bias"],
    }
    for i in range(LAYERS):
        mine, hf = f"encoder.layers.{i}.", f"encoder.layer.{i}."
        for part, (weight, bias) in zip(
            ("query", "key", "value"),
            zip(
                ours[mine + "self_attn.in_proj_weight"].chunk(3),
                ours[mine + "self_attn.in_proj_bias"].chunk(3),
                strict=True,
            ),
            strict=True,
        ):
            theirs[f"{hf}attention.self.{part}.weight"] = weight
            theirs[f"{hf}attention.self.{part}.bias"] = bias
        for ours_name, hf_name in (
            ("self_attn.out_proj", "attention.output.dense"),
            ("norm1", "attention.output.LayerNorm"),
            ("linear1", "intermediate.dense"),
            ("linear2", "output.dense"),
            ("norm2", "output.LayerNorm"),
        ):
            for kind in ("weight", "bias"):
                theirs[f"{hf}{hf_name}.{kind}"] = ours[f"{mine}{ours_name}.{kind}"]
    missing, unexpected = bert.load_state_dict(theirs, strict=False)
    assert not unexpected and set(missing) <= {"embeddings.position_ids"}
    return bert


def padded_batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """ids (6, LENGTH) starting with a non-pad token, lengths 1..LENGTH, pads after; mask."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (6, LENGTH), generator=generator)
    lengths = torch.tensor([1, 3, 5, 7, 8, LENGTH])
    mask = (torch.arange(LENGTH) < lengths[:, None]).long()
    return ids * mask + PAD * (1 - mask), mask


@pytest.mark.parametrize("grad", [True, False], ids=["training path", "no-grad eval path"])
def test_small_bert_computes_what_bert_model_computes(grad):
    small = small_bert().double()
    bert = reference_bert(small).double()
    ids, mask = padded_batch()
    small.train(grad)
    bert.train(grad)
    with torch.set_grad_enabled(grad):
        ours = small(input_ids=ids, attention_mask=mask).last_hidden_state
        theirs = bert(input_ids=ids, attention_mask=mask).last_hidden_state
    assert ours.shape == (6, LENGTH, WIDTH)
    kept = mask.bool()  # positions a pad token holds are never read (CLS pooling)
    torch.testing.assert_close(ours[kept], theirs[kept], rtol=0, atol=1e-10)


def test_the_pad_token_changes_nothing_it_is_not():
    """A caption's hidden states do not depend on the tokens behind its mask."""
    small = small_bert().double().eval()
    ids, mask = padded_batch()
    other = torch.where(mask.bool(), ids, torch.full_like(ids, 7))
    kept = mask.bool()
    with torch.no_grad():
        a = small(input_ids=ids, attention_mask=mask).last_hidden_state
        b = small(input_ids=other, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(a[kept], b[kept], rtol=0, atol=1e-12)


def test_small_bert_starts_from_berts_initialisation():
    small = small_bert()
    weights = [p for name, p in small.named_parameters() if "norm" not in name and p.ndim == 2]
    values = torch.cat([w.flatten() for w in weights])
    assert abs(values.std().item() - 0.02) < 0.002
    assert small.word_embeddings.weight[PAD].abs().max() == 0
    biases = [p for name, p in small.named_parameters() if name.endswith("bias")]
    assert biases and all(b.abs().max() == 0 for b in biases)
    assert torch.equal(
        small_bert(3).state_dict()["encoder.layers.1.linear2.weight"],
        small_bert(3).state_dict()["encoder.layers.1.linear2.weight"],
    )
