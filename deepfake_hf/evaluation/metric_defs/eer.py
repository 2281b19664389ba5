"""EER: the interpolated ROC point where the false-positive rate equals the false-negative rate."""

from deepfake_hf.evaluation.metric_defs import MetricDef, MetricInputs


def compute(inputs: MetricInputs) -> float:
    inputs.need_both_classes()
    return inputs.equal_error[0]


METRIC = MetricDef(
    name="eer", label="EER", compute=compute, order=8, percent=True, higher_is_better=False,
    model_index_type="eer", column=2, interval=3, tables={"report", "report_per_method", "card", "robustness"},
    description="the interpolated ROC point where FPR = 1 - TPR",
)
