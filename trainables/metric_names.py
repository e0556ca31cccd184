"""The names of the per-epoch metrics a trial reports, and the direction of each metric a
study can optimise: the one list that the evaluation, the results tables, the study config
and the tests use.

:data:`EPOCH_METRICS` is the contract of DESIGN.md, in its order: ``epoch``, ``train_loss``,
recall@{1,5,10} image->text (``txt_r*``) and text->image (``img_r*``), their means
``txt_r_mean``, ``img_r_mean`` and ``r_mean``, and zero-shot top-{1,3,5,10} accuracy
``zs_top*`` (percentages). :data:`TIMINGS` are the seconds per epoch the trial also reports.
No torch here (importing ``trainables`` still runs its torchvision shim).
"""

RECALL_KS = (1, 5, 10)
ZEROSHOT_KS = (1, 3, 5, 10)

RETRIEVAL_METRICS = (
    *(f"txt_r{k}" for k in RECALL_KS),
    *(f"img_r{k}" for k in RECALL_KS),
    "txt_r_mean",
    "img_r_mean",
    "r_mean",
)
ZEROSHOT_METRICS = tuple(f"zs_top{k}" for k in ZEROSHOT_KS)
EPOCH_METRICS = ("epoch", "train_loss", *RETRIEVAL_METRICS, *ZEROSHOT_METRICS)
TIMINGS = ("time_data_s", "time_step_s", "time_views_s", "time_eval_s")

# metric -> "max" (higher is better) or "min": every reported metric but the epoch count
METRIC_MODES = {
    "train_loss": "min",
    **dict.fromkeys((*RETRIEVAL_METRICS, *ZEROSHOT_METRICS), "max"),
}
