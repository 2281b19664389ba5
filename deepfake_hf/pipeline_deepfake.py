"""Face-aware `pipeline("image-classification")` and `pipeline("video-classification")` for a deepfake detector.

This file is copied next to the weights of a model that records a face mode (`face_preprocessing` "dlib" or
"deepfakebench"), and the model's config names it in `custom_pipelines`, so

    pipeline("image-classification", model=folder_or_hub_id, trust_remote_code=True)(photo)

finds, aligns and scores faces exactly as `deepfake-hf predict` does and reports the same fake probability (the
most suspicious face's). Unlike `configuration_deepfake.py` and `modeling_deepfake.py`, this file is not
self-contained: it imports the installed `deepfake_hf` package (`pip install 'deepfake-hf[faces]'`), whose
`scoring.Scorer` is the one place frames, faces, crops, calibration and aggregation are decided, so the pipeline
cannot drift from `predict`. A model that scores whole images has no such file and uses transformers' own
pipelines.
"""

from typing import Any

from transformers import Pipeline

FACES_INSTALL = "pip install 'deepfake-hf[faces]'"


def _scorer_class():
    """`deepfake_hf.scoring.scorer.Scorer`, or a one-line ImportError naming the install command."""
    try:  # inside try: transformers' import check would otherwise ask for a package named "deepfake_hf"
        from deepfake_hf.scoring.scorer import Scorer
    except ImportError:
        raise ImportError(f"this model's pipeline (pipeline_deepfake.py) finds faces with deepfake-hf: "
                          f"{FACES_INSTALL}") from None
    return Scorer


class DeepfakeImageClassificationPipeline(Pipeline):
    """Scores a photo (path, PIL image or array) or a video (path) the way `deepfake-hf predict` does.

    Options (at construction or per call): `face_mode` ("none" scores the input as given, e.g. an aligned crop;
    default: the face mode the model records), `num_frames` (frames per video; default: the model's).

    Returns two rows, the verdict first: `{"label", "score"}` for "fake" (the calibrated fake probability, which
    `predict` reports) and "real" (one minus it), each with `fake_probability`, `face_found` (None when no
    face detection ran), `faces` (people found), `face` (index of the person whose score decided, in the order
    they were found; None without faces), `note` (what the score rests on when that is not the normal case)
    and, for a video, `frame_scores` (that person's per-frame probabilities, None where not seen).
    """

    _load_processor = False
    _load_image_processor = True
    _load_feature_extractor = False
    _load_tokenizer = False
    _load_video_processor = False

    def __init__(self, *args: Any, face_mode: str | None = None, num_frames: int | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._scorers: dict = {}
        self.face_mode, self.num_frames = face_mode, num_frames
        self.scorer(face_mode, num_frames)  # a missing faces extra is reported when the pipeline loads

    def scorer(self, face_mode: str | None = None, num_frames: int | None = None) -> Any:
        """The `Scorer` of this model with these options (built once per pair)."""
        key = (face_mode, num_frames)
        if key not in self._scorers:
            self._scorers[key] = _scorer_class()(self.model, self.image_processor, faces=face_mode,
                                                 num_frames=num_frames, device=self.device)
        return self._scorers[key]

    def _sanitize_parameters(self, face_mode: str | None = None, num_frames: int | None = None, **kwargs: Any):
        options: dict[str, Any] = {}
        if face_mode is not None:
            options["face_mode"] = face_mode
        if num_frames is not None:
            options["num_frames"] = num_frames
        return options, {}, {}

    def preprocess(self, inputs: Any, face_mode: str | None = None, num_frames: int | None = None) -> dict:
        import torch

        scorer = self.scorer(face_mode or self.face_mode, num_frames or self.num_frames)
        frames, kind = scorer.read(inputs)
        plan = scorer.plan(frames)
        pixel_values = torch.stack(scorer.preprocess(plan.crops))
        plan.crops = None
        return {"pixel_values": pixel_values, "plan": plan, "kind": kind, "scorer": scorer}

    def _forward(self, model_inputs: dict) -> dict:
        import numpy as np

        scorer, pixel_values = model_inputs["scorer"], model_inputs["pixel_values"]
        margins = [scorer.forward(pixel_values[start:start + scorer.batch_size])
                   for start in range(0, len(pixel_values), scorer.batch_size)]
        return {**model_inputs, "pixel_values": None, "margins": np.concatenate(margins)}

    def postprocess(self, model_outputs: dict) -> list[dict]:
        scorer, plan = model_outputs["scorer"], model_outputs["plan"]
        verdict = scorer.decide(plan, model_outputs["margins"])
        probability = float(verdict.probability)
        extras = {"fake_probability": probability, "face_found": None if plan.faces is None else plan.faces > 0,
                  "faces": plan.faces, "face": verdict.person if plan.faces else None, "note": plan.note}
        if model_outputs["kind"] == "video":
            extras["frame_scores"] = verdict.frame_scores
        rows = [{"label": "fake", "score": probability, **extras}, {"label": "real", "score": 1.0 - probability,
                                                                      **extras}]
        return rows if scorer.label(probability) == "fake" else rows[::-1]


class DeepfakeVideoClassificationPipeline(DeepfakeImageClassificationPipeline):
    """The same scoring for `pipeline("video-classification")`: a video path gives `predict`'s video score
    (its frames, face tracking and aggregation)."""


__all__ = ["DeepfakeImageClassificationPipeline", "DeepfakeVideoClassificationPipeline"]
