"""deepfake_metrics: the deepfake-detection metrics of `deepfake_hf.evaluation.metrics` as an `evaluate` module.

Loads offline by path: `evaluate.load(deepfake_hf.evaluation.metrics.EVALUATE_MODULE_PATH)`.
"""

import datasets
import evaluate

from deepfake_hf.evaluation.metric_defs import registered_metrics
from deepfake_hf.evaluation.metrics import binary_metrics, evaluate_scores

_DESCRIPTION = ("Binary real (0) / fake (1) detection metrics from fake probabilities (one module each in "
                "deepfake_hf.evaluation.metric_defs): "
                + "; ".join(f"{metric.name}, {metric.description}" for metric in registered_metrics().values())
                + ". Undefined metrics (e.g. AUROC on one class) are None with a reason.")

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `float`): fake probability of each sample.
    references (`list` of `int`): 0 real, 1 fake.
    threshold (`float`, default 0.5): fake when the probability is at or above it.
    groups (`list` of `str`, optional): full video path of each frame; adds video-level metrics and
        bootstrap intervals that resample videos.
    aggregation (`str`, default "mean"): "mean" or "confident" frame aggregation per video.
    n_resamples (`int`, default 0): bootstrap resamples for 95% intervals (0: none).
Returns:
    the metrics dict (frame level), or {"frame": ..., "video": ...} when groups or n_resamples are given.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class DeepfakeMetrics(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("float64"),
                                        "references": datasets.Value("int32")}),
        )

    def _compute(self, predictions, references, threshold=0.5, groups=None, aggregation="mean", n_resamples=0):
        if groups is None and not n_resamples:
            return binary_metrics(references, predictions, threshold=threshold)
        return evaluate_scores(references, predictions, groups=groups, threshold=threshold,
                               aggregation=aggregation, n_resamples=n_resamples)
