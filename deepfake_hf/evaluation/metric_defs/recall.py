"""Recall: the share of fake samples called fake (true-positive rate)."""

from deepfake_hf.evaluation.metric_defs import MetricDef, MetricInputs, Undefined


def compute(inputs: MetricInputs) -> float:
    if not inputs.n_fake:
        raise Undefined("no fake samples")
    return inputs.true_positive / inputs.n_fake


METRIC = MetricDef(name="recall", label="Recall", compute=compute, order=4, percent=True,
                   description="share of the fake samples called fake")
