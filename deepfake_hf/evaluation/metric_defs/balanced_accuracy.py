"""Balanced accuracy: the mean of the fake and the real samples' accuracies at the threshold."""

from deepfake_hf.evaluation.metric_defs import MetricDef, MetricInputs


def compute(inputs: MetricInputs) -> float:
    inputs.need_both_classes()
    real_correct = int(((1 - inputs.predicted) & (1 - inputs.labels)).sum())
    return 0.5 * (inputs.true_positive / inputs.n_fake + real_correct / inputs.n_real)


METRIC = MetricDef(
    name="balanced_accuracy", label="Balanced acc.", compute=compute, order=2, percent=True, column=7, interval=5,
    tables={"card"}, description="mean of the true-positive and true-negative rates at the decision threshold",
)
