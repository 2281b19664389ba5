"""Precision: the share of samples called fake that are fake."""

from deepfake_hf.evaluation.metric_defs import MetricDef, MetricInputs, Undefined


def compute(inputs: MetricInputs) -> float:
    if not inputs.predicted_fake:
        raise Undefined(f"no sample scored >= threshold {inputs.threshold:g}")
    return inputs.true_positive / inputs.predicted_fake


METRIC = MetricDef(name="precision", label="Precision", compute=compute, order=3, percent=True,
                   description="share of the samples called fake that are fake")
