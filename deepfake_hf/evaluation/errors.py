"""The evaluation package's errors: each a `DeepfakeHFError` with a one-line message.

They also derive from ValueError, which is what the checks raised before and what callers that wrap
scikit-learn's own errors already catch.
"""

from __future__ import annotations

from deepfake_hf.errors import DeepfakeHFError


class EvaluationError(DeepfakeHFError, ValueError):
    """A one-line problem with the model, a data source or an evaluation option."""


class MetricInputError(EvaluationError):
    """Labels, scores or video groups that no metric can be computed from (lengths differ, labels not 0/1, ...)."""


class MetricDefinitionError(DeepfakeHFError, ValueError):
    """A metric definition (a module of `evaluation.metric_defs`) that cannot be registered."""


__all__ = ["EvaluationError", "MetricDefinitionError", "MetricInputError"]
