"""Releasing a data-parallel trial's placement group when its Tune trial ends.

Ray Train reserves the W workers of a data-parallel trial in a placement group, which its
controller removes when the run ends by itself. When Tune stops the trial first (ASHA, or the
epoch budget reached), it kills the trial's actor and with it the controller: the group
outlives them, as it lives as long as the job's driver, and holds its CPUs and GPUs until the
sweep ends (ray-project/ray#54305). Ray's own ``PlacementGroupCleaner`` would remove it, but it
asks Ray's State API, which needs the dashboard that clipstudy's Ray does not run. So rank 0
reports the id of its group under :data:`PLACEMENT_GROUP_KEY`, and
:class:`ReleasePlacementGroups`, a Tune callback of the sweep's driver, removes that group when
the trial completes or fails. Without it, a sweep with more data-parallel trials than fit at
once waits forever for the resources of the trials it stopped.
"""

from __future__ import annotations

import ray
from ray.tune import Callback
from ray.util.placement_group import (
    PlacementGroup,
    get_current_placement_group,
    placement_group_table,
    remove_placement_group,
)

PLACEMENT_GROUP_KEY = "train_placement_group"  # the hex id of the Train run's workers' group


def current_placement_group_id() -> str | None:
    """The hex id of the placement group this Ray worker runs in (None outside of one)."""
    group = get_current_placement_group()
    return None if group is None else group.id.hex()


class ReleasePlacementGroups(Callback):
    """Removes, when a trial completes or fails, the placement group its last result named."""

    def __init__(self) -> None:
        self.groups: dict[str, str] = {}  # Ray trial id -> hex id of its Train workers' group

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        if group := result.get(PLACEMENT_GROUP_KEY):
            self.groups[trial.trial_id] = group

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        self._release(trial.trial_id)

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        self._release(trial.trial_id)

    def _release(self, trial_id: str) -> None:
        if (group_id := self.groups.pop(trial_id, None)) is None:
            return
        group = PlacementGroup(ray.PlacementGroupID.from_hex(group_id))
        if placement_group_table(group).get("state") not in (None, "REMOVED"):
            remove_placement_group(group)
