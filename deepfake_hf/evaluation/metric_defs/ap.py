"""AP: average precision, the area under the precision-recall curve (threshold-free)."""

from deepfake_hf.evaluation.metric_defs import MetricDef, MetricInputs


def compute(inputs: MetricInputs) -> float:
    from sklearn.metrics import average_precision_score

    inputs.need_both_classes()
    return float(average_precision_score(inputs.labels, inputs.scores))


METRIC = MetricDef(
    name="ap", label="AP", compute=compute, order=7, percent=True, model_index_type="average_precision", column=4,
    interval=2, tables={"report", "report_per_method", "card", "robustness"},
    description="average precision over the ranking of fake probabilities",
)
