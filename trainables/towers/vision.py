"""Image models of torchvision or timm with their classifier removed, weights from local files.

:func:`image_backbone` returns a module mapping images (B, 3, S, S) to pooled features (B, F)
and F (2048 for a ResNet-50). The classifier (torchvision: the last ``nn.Linear`` of ``fc``,
``classifier``, ``heads`` or ``head``; timm: ``reset_classifier(0)``) becomes the identity,
and its keys in a state dict are ignored, so a file saved from the full classification model
loads. Weights come from a state-dict file, or by name from the local torch hub cache
(torchvision) or Hugging Face cache (timm); a missing file or a state dict that does not fit
raises :class:`~trainables.model_config.ModelError`. Nothing is downloaded.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainables.model_config import ModelError, is_weights_file

TIMM_PREFIX = "timm:"
CLASSIFIER_ATTRIBUTES = ("fc", "classifier", "heads", "head")


def image_backbone(name: str, weights: str = "") -> tuple[nn.Module, int]:
    """(features module, F) of torchvision model ``name`` (or timm's, for ``timm:<name>`` or
    a name torchvision lacks), with ``weights`` ("" = random initialisation) loaded."""
    import timm
    from torchvision import models

    if not name.startswith(TIMM_PREFIX) and name in models.list_models():
        return _torchvision_backbone(name, weights)
    timm_name = name.removeprefix(TIMM_PREFIX)
    if not timm.is_model(timm_name):
        known = [*models.list_models(), *timm.list_models()]
        hint = difflib.get_close_matches(timm_name, known, n=1)
        raise ModelError(
            f"model.image {name!r} is neither a torchvision nor a timm model"
            + (f"; did you mean {hint[0]!r}?" if hint else "; try 'resnet50' or 'timm:resnet50'")
        )
    return _timm_backbone(timm_name, weights)


def _torchvision_backbone(name: str, weights: str) -> tuple[nn.Module, int]:
    from torchvision import models

    model = models.get_model(name, weights=None)
    classifier, width = _drop_linear_classifier(model, name)
    if weights:
        path = _weights_file(weights) if is_weights_file(weights) else _torch_cache(name, weights)
        load_fitting(model, read_state_dict(path), f"{path} for torchvision {name}", classifier)
    return model, width


def _drop_linear_classifier(model: nn.Module, name: str) -> tuple[str, int]:
    """Replace the model's last classifier ``nn.Linear`` by the identity; returns its
    qualified name and in_features."""
    for attribute in CLASSIFIER_ATTRIBUTES:
        head = getattr(model, attribute, None)
        if isinstance(head, nn.Linear):
            setattr(model, attribute, nn.Identity())
            return attribute, head.in_features
        if isinstance(head, nn.Sequential):
            linear = [key for key, layer in head.named_children() if isinstance(layer, nn.Linear)]
            if linear:
                width = getattr(head, linear[-1]).in_features
                setattr(head, linear[-1], nn.Identity())
                return f"{attribute}.{linear[-1]}", width
    raise ModelError(
        f"torchvision model {name!r} has no linear classifier ({', '.join(CLASSIFIER_ATTRIBUTES)}) "
        "to replace by the projection; choose a classification model such as 'resnet50'"
    )


def _torch_cache(name: str, weights: str) -> Path:
    """The torch hub cache file of torchvision weights ``weights`` (``IMAGENET1K_V2``,
    ``DEFAULT`` or ``ResNet50_Weights.IMAGENET1K_V2``) of model ``name``."""
    from torchvision import models

    enum = models.get_model_weights(name)
    key = weights.rpartition(".")[2]
    if key not in enum.__members__:
        raise ModelError(
            f"model.image_weights {weights!r} is no weights name of torchvision {name} "
            f"(names: {', '.join(enum.__members__)}) and no file path; give a path to a "
            "state-dict file (with a '/' or a .pth suffix) or one of those names"
        )
    url = enum[key].url
    path = Path(torch.hub.get_dir()) / "checkpoints" / url.rpartition("/")[2]
    if not path.is_file():
        raise ModelError(
            f"torchvision weights {name} {key} are not in the torch cache: {path} is missing "
            f"(nothing is downloaded at run time); download {url} to that file, set TORCH_HOME "
            "to a cache that has it, or set model.image_weights to a local file"
        )
    return path


def _timm_backbone(name: str, weights: str) -> tuple[nn.Module, int]:
    import timm

    if weights and not is_weights_file(weights):
        tagged = name if weights == "default" else f"{name}.{weights}"
        file = _hf_cache_file(tagged)
        model: Any = timm.create_model(
            tagged, pretrained=True, pretrained_cfg_overlay={"file": str(file)}
        )
        model.reset_classifier(0)
        return model, model.num_features
    model = timm.create_model(name, pretrained=False)
    classifier = model.pretrained_cfg.get("classifier", "")
    model.reset_classifier(0)
    if weights:
        path = _weights_file(weights)
        load_fitting(model, read_state_dict(path), f"{path} for timm {name}", classifier)
    return model, model.num_features


def _hf_cache_file(tagged: str) -> Path:
    """The Hugging Face cache file of timm's pretrained ``arch.tag`` (for example
    ``resnet50.a1_in1k``, repository ``timm/resnet50.a1_in1k``; a bare arch: its default)."""
    import huggingface_hub
    from huggingface_hub import constants
    from timm.models import get_pretrained_cfg

    try:
        pretrained = get_pretrained_cfg(tagged, allow_unregistered=False)
    except RuntimeError:
        pretrained = None
    if pretrained is None or not pretrained.hf_hub_id:
        raise ModelError(
            f"timm has no pretrained weights {tagged!r} on Hugging Face (see "
            "timm.list_pretrained()); set model.image_weights to a tag such as 'a1_in1k', "
            "'default' or a file path"
        )
    repo = pretrained.hf_hub_id
    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = huggingface_hub.try_to_load_from_cache(repo, filename)
        if isinstance(found, str):
            return Path(found)
    raise ModelError(
        f"timm weights {repo} are not in the Hugging Face cache {constants.HF_HUB_CACHE} "
        f"(nothing is downloaded at run time); fill it with `hf download {repo}` "
        "or set model.image_weights to a local file"
    )


def _weights_file(weights: str) -> Path:
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ModelError(
            f"model.image_weights {path} does not exist; save the image model's state dict "
            'there (torch.save(model.state_dict(), path)) or set model.image_weights = "" '
            "for random initialisation"
        )
    return path


def read_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    """The tensors of a ``torch.save``-d state dict or a ``.safetensors`` file (a checkpoint
    holding it under ``state_dict`` or ``model`` is unwrapped)."""
    state: Any
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling and safetensors raise many kinds
        raise ModelError(
            f"model.image_weights {path} is not a readable state dict ({type(exc).__name__}); "
            "save one with torch.save(model.state_dict(), path)"
        ) from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ModelError(
            f"model.image_weights {path} holds no state dict of tensors; "
            "save one with torch.save(model.state_dict(), path)"
        )
    return state


def load_fitting(
    model: nn.Module, state: Mapping[str, torch.Tensor], source: str, classifier: str
) -> None:
    """Load ``state`` into ``model`` exactly (keys under ``classifier.`` are ignored); a
    missing, unexpected or differently shaped key raises ModelError naming the first ones."""
    state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from DDP
    if classifier:
        state = {k: v for k, v in state.items() if not k.startswith(f"{classifier}.")}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    reshaped = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    problems = [
        f"{len(keys)} {what} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
        for what, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("keys of another shape", reshaped),
        )
        if keys
    ]
    if problems:
        raise ModelError(
            f"the state dict {source} does not fit: {'; '.join(problems)}; save the state dict "
            "of the same architecture as model.image"
        )
    model.load_state_dict(state, strict=True)
