"""Restoring a resumed trial when the checkpoint Ray's experiment snapshot names is gone.

Ray Tune keeps ``num_to_keep`` checkpoints per trial and deletes the oldest as soon as a new
one is registered, but it writes the experiment snapshot (which names each trial's latest
checkpoint) only afterwards. A driver killed in between leaves a snapshot naming a deleted
checkpoint, and ``Trainable.restore`` then fails the trial ("Could not recover from
checkpoint as it does not exist on storage anymore"). :class:`RestoreNewestCheckpoint` is a
trainable mixin (Ray's ``__mixins__`` hook of function trainables) that restores instead from
the newest checkpoint the trial has left on storage, a ``checkpoint_<n>`` directory holding
the trial's state file, and starts the trial afresh when there is none.
"""

from __future__ import annotations

import logging
import posixpath
from typing import TYPE_CHECKING, Any

import pyarrow.fs

from trainables.checkpoint import STATE_FILE

if TYPE_CHECKING:
    from ray.tune import Checkpoint

logger = logging.getLogger(__name__)
CHECKPOINT_PREFIX = "checkpoint_"  # Ray Tune's name of a trial's checkpoint directories


def newest_checkpoint(fs: pyarrow.fs.FileSystem, trial_path: str) -> str | None:
    """The path of the highest-numbered ``checkpoint_<n>`` directory under ``trial_path`` on
    ``fs`` that holds :data:`STATE_FILE`, or None."""
    selector = pyarrow.fs.FileSelector(trial_path, allow_not_found=True)
    directories = sorted(
        (info.path for info in fs.get_file_info(selector) if info.type.name == "Directory"),
        key=posixpath.basename,
        reverse=True,
    )
    for path in directories:
        if posixpath.basename(path).startswith(CHECKPOINT_PREFIX):
            state = fs.get_file_info(posixpath.join(path, STATE_FILE))
            if state.type.name == "File":
                return path
    return None


def restorable(checkpoint: Checkpoint) -> Checkpoint | None:
    """``checkpoint`` when it exists, else the newest checkpoint of its trial on the same
    storage (:func:`newest_checkpoint`), else None."""
    from ray.tune import Checkpoint

    fs = checkpoint.filesystem
    if fs is None or fs.get_file_info(checkpoint.path).type.name != "NotFound":
        return checkpoint
    newest = newest_checkpoint(fs, posixpath.dirname(checkpoint.path))
    return None if newest is None else Checkpoint(newest, filesystem=fs)


class RestoreNewestCheckpoint:
    """Mixin of a Ray function trainable: ``restore`` falls back to the trial's newest
    checkpoint on storage when the one it is asked for no longer exists (and to a fresh start
    when none is left)."""

    def restore(self, checkpoint_path: Any) -> None:
        from ray.tune import Checkpoint

        checkpoint = getattr(checkpoint_path, "checkpoint", checkpoint_path)
        if isinstance(checkpoint, Checkpoint):
            found = restorable(checkpoint)
            if found is None:
                logger.warning("%s is gone and no other checkpoint: afresh", checkpoint.path)
                return
            if found is not checkpoint:
                logger.warning("%s is gone: restoring %s", checkpoint.path, found.path)
                checkpoint_path = found
        super().restore(checkpoint_path)  # type: ignore[misc]
