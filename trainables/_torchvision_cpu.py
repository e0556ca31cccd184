"""Let the registry's CUDA-only torchvision 0.28 import beside the CPU build of torch.

Its compiled ops need libtorch_cuda, so on a CPU-only torch ``import torchvision`` fails with
"operator torchvision::nms does not exist" (and transformers, which imports torchvision, fails
with it). When the compiled library does not load, the two operator schemas torchvision's
Python side registers against are defined here; the transforms used by clipstudy are pure
PyTorch and work. On a machine where the library loads (a CUDA build), nothing is changed.
See ../shared/reference/environment.md.
"""

from __future__ import annotations

import importlib.util
import os

import torch

_LIBRARY: torch.library.Library | None = None


def define_missing_ops() -> bool:
    """Define ``torchvision::nms``/``qnms`` if torchvision's compiled ops cannot load.

    Returns True when the schemas had to be defined here.
    """
    global _LIBRARY
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None or _LIBRARY is not None:
        return False
    try:
        torch.ops.load_library(os.path.join(os.path.dirname(spec.origin), "_C.so"))
        return False
    except (OSError, ImportError, RuntimeError):
        pass
    _LIBRARY = torch.library.Library("torchvision", "FRAGMENT")
    _LIBRARY.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBRARY.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    return True
