"""Accuracy: the share of samples on the right side of the decision threshold."""

from deepfake_hf.evaluation.metric_defs import MetricDef, MetricInputs


def compute(inputs: MetricInputs) -> float:
    return float((inputs.predicted == inputs.labels).mean())


METRIC = MetricDef(
    name="accuracy", label="Accuracy", compute=compute, order=1, percent=True, model_index_type="accuracy",
    column=6, interval=4, tables={"report", "card", "robustness"},
    description="share of samples called correctly at the decision threshold",
)
