"""A resumed trial's re-reported epochs become one row each (the last report kept)."""

from __future__ import annotations

import pandas as pd

from study.results import epoch_rows


def test_epochs_reported_twice_after_a_resume_keep_their_last_report():
    history = pd.DataFrame(
        {
            "epoch": [1, 2, 2, 3],
            "r_mean": [10.0, 20.0, 20.0, 30.0],
            "time_this_iter_s": [1.0, 1.1, 1.4, 1.2],
            "trial_id": ["t"] * 4,  # not a metric column: dropped
        }
    )
    rows = epoch_rows(history)
    assert rows["epoch"].tolist() == [1, 2, 3]
    assert rows["time_this_iter_s"].tolist() == [1.0, 1.4, 1.2]
    assert list(rows.columns) == ["epoch", "r_mean", "time_this_iter_s"]
