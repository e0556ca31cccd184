"""Hugging Face text models and their fast tokenizers, from the local cache or a directory.

``name`` is a model id (``distilbert-base-uncased``, looked up in the Hugging Face cache) or
a directory written by ``save_pretrained``. Both load with ``local_files_only=True``: a model
that is not there, a checkpoint that does not fit its config, or a tokenizer that is not a fast
(``tokenizers``-backed) one raises :class:`~trainables.model_config.ModelError` saying how to
fill the cache or directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainables.model_config import ModelError


def _where(name: str) -> str:
    """Where ``name`` is looked for, and how to fill it, for error messages."""
    from huggingface_hub import constants

    if Path(name).expanduser().is_dir() or name.startswith((".", "/", "~")):
        return (
            f"directory {name} (write it with save_pretrained, or "
            f"`hf download <model id> --local-dir {name}`)"
        )
    return (
        f"{name} in the Hugging Face cache {constants.HF_HUB_CACHE} (nothing is downloaded at "
        f"run time; fill it with `hf download {name}` or set model.text to a local directory)"
    )


def text_backbone(name: str) -> tuple[Any, int]:
    """(the pretrained encoder ``AutoModel``, its hidden size H); the encoder maps
    ``input_ids, attention_mask`` (B, L) to ``last_hidden_state`` (B, L, H)."""
    from transformers import AutoModel

    try:
        model, info = AutoModel.from_pretrained(
            name, local_files_only=True, output_loading_info=True
        )
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"cannot load text model {_where(name)}: {str(exc).splitlines()[0]}"
        ) from None
    except RuntimeError as exc:  # weights of another shape than the config says
        raise ModelError(
            f"the weights of text model {_where(name)} do not fit its config.json: "
            f"{str(exc).splitlines()[0]}"
        ) from None
    bad = [*info.get("missing_keys", ()), *info.get("mismatched_keys", ())]
    if bad:
        raise ModelError(
            f"the weights of text model {_where(name)} lack or misshape {len(bad)} tensors "
            f"({', '.join(map(str, bad[:3]))}); save the full model with save_pretrained"
        )
    return model, model.config.hidden_size


def fast_tokenizer(name: str) -> Any:
    """The model's own fast tokenizer (``AutoTokenizer``, ``is_fast``)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError, TypeError) as exc:
        raise ModelError(
            f"cannot load the tokenizer of text model {_where(name)}: {str(exc).splitlines()[0]}"
        ) from None
    if len(tokenizer) <= len(tokenizer.all_special_tokens):  # transformers made an empty one
        raise ModelError(
            f"text model {_where(name)} has no tokenizer vocabulary (no tokenizer.json or "
            "vocab.txt); save the model's tokenizer beside it with save_pretrained"
        )
    if not getattr(tokenizer, "is_fast", False) or tokenizer.pad_token_id is None:
        raise ModelError(
            f"the tokenizer of text model {_where(name)} is not a fast tokenizer with a pad "
            "token; save a tokenizers-backed one (tokenizer.json) beside the model"
        )
    return tokenizer
