"""AUROC: the area under the ROC curve of the fake probabilities (threshold-free)."""

from deepfake_hf.evaluation.metric_defs import MetricDef, MetricInputs


def compute(inputs: MetricInputs) -> float:
    from sklearn.metrics import roc_auc_score

    inputs.need_both_classes()
    return float(roc_auc_score(inputs.labels, inputs.scores))


METRIC = MetricDef(
    name="auroc", label="AUROC", compute=compute, order=6, percent=True, model_index_type="roc_auc", column=1,
    interval=1, tables={"report", "report_per_method", "card", "robustness"}, video_column=True,
    description="area under the ROC curve of the fake probabilities",
)
