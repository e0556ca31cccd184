"""One trial: data, augmentations, encoders, losses, optimizers, train/eval loop.

Importing this package first makes torchvision importable on a CPU-only torch (every process,
Ray workers included, imports it before transformers or torchvision).
"""

from trainables._torchvision_cpu import define_missing_ops

define_missing_ops()
