"""The word-level caption tokenizer: ids, [UNK], padding, truncation, serialisation."""

import torch

from trainables.data import read_train_annotations, read_zeroshot_classes
from trainables.tokenizer import CaptionTokenizer

PAD, UNK, CLS, SEP = 0, 1, 2, 3


def test_vocabulary_is_sorted_cleaned_words_after_special_tokens():
    tok = CaptionTokenizer.from_texts(["Red circle.", "a blue-circle"], max_length=8)
    # cleaned words, sorted: a blue circle red -> ids 4..7
    assert tok.vocab_size == 8
    assert tok.pad_id == PAD
    assert tok.max_length == 8
    ids, mask = tok(["A red, blue circle!"])
    assert ids.tolist() == [[CLS, 4, 7, 5, 6, SEP, PAD, PAD]]
    assert mask.tolist() == [[1, 1, 1, 1, 1, 1, 0, 0]]
    assert ids.dtype == mask.dtype == torch.long


def test_vocabulary_does_not_depend_on_text_order():
    texts = ["a red circle", "the blue square", "one cross"]
    forward = CaptionTokenizer.from_texts(texts)
    backward = CaptionTokenizer.from_texts(reversed(texts))
    assert forward.to_json() == backward.to_json()


def test_unknown_words_map_to_unk():
    tok = CaptionTokenizer.from_texts(["a red circle"], max_length=6)
    ids, _ = tok(["a green circle"])
    assert ids.tolist() == [[CLS, 4, UNK, 5, SEP, PAD]]


def test_padding_and_truncation_to_max_length():
    tok = CaptionTokenizer.from_texts(["one two three four five six seven"], max_length=5)
    ids, mask = tok(["one two three four five six seven", "two", ""])
    assert ids.shape == mask.shape == (3, 5)
    kept = [tok.token_to_id(word) for word in ("one", "two", "three")]
    assert ids[0].tolist() == [CLS, *kept, SEP]
    assert mask.sum(dim=1).tolist() == [5, 3, 2]
    assert ids[2].tolist() == [CLS, SEP, PAD, PAD, PAD]
    assert tok([])[0].shape == (0, 5)


def test_json_round_trip():
    tok = CaptionTokenizer.from_texts(["a small red circle", "a big blue cross"], max_length=7)
    restored = CaptionTokenizer.from_json(tok.to_json())
    texts = ["a big red circle", "an unknown small thing"]
    for got, want in zip(restored(texts), tok(texts), strict=True):
        assert torch.equal(got, want)
    assert (restored.vocab_size, restored.max_length) == (tok.vocab_size, tok.max_length)


def test_synthetic_captions_cover_zeroshot_prompts(tiny_dataset):
    records = read_train_annotations(tiny_dataset / "train.json")
    tok = CaptionTokenizer.from_texts([t for r in records for t in (r.caption, *r.paraphrases)])
    spec = read_zeroshot_classes(tiny_dataset / "zeroshot" / "classes.json")
    prompts = [t.format(c) for t in spec.templates for c in spec.classes]
    ids, mask = tok(prompts)
    assert not (ids == UNK).any()
    assert (mask.sum(dim=1) < tok.max_length).all()  # no prompt truncated
