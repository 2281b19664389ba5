"""Faces across the frames of one video: box overlap, the face a one-face crop takes, tracks, per-video detection."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from deepfake_hf.faces.base import Face


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def most_prominent(faces: Sequence[Face]) -> Face:
    """The face a one-face crop takes: the largest box, weighted by the detector's confidence."""
    return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) * max(f.score, 1e-3))


def track_faces(faces_per_frame: Iterable[Sequence[Face]], min_iou: float = 0.3) -> list[dict[int, int]]:
    """Link faces across frames by box overlap: a list of tracks, each a {frame index: face index} dict.

    Each face joins the track whose latest box overlaps it most (IoU >= `min_iou`), largest faces
    first; a face that matches no track starts a new one.
    """
    tracks: list[dict[int, int]] = []
    last_box: list[tuple] = []  # each track's latest box
    for frame_index, faces in enumerate(faces_per_frame):
        taken = set()
        order = sorted(range(len(faces)), key=lambda i: faces[i].area, reverse=True)
        for face_index in order:
            box = faces[face_index].box
            best, best_iou = None, min_iou
            for track_index, previous in enumerate(last_box):
                if track_index in taken:
                    continue
                iou = box_iou(box, previous)
                if iou >= best_iou:
                    best, best_iou = track_index, iou
            if best is None:
                tracks.append({})
                last_box.append(box)
                best = len(tracks) - 1
            tracks[best][frame_index] = face_index
            last_box[best] = box
            taken.add(best)
    return tracks


def detect_video(detector: Any, frames: Iterable[Any]) -> Iterator[list[Face]]:
    """The faces of each frame of one video (an iterator of lists, one per frame, in order).

    Uses the detector's own `detect_video(frames)` where it has one (dlib: key frames plus windows
    around the faces it follows), else `detect` per frame, so any object with `detect(image)` works.
    """
    method = getattr(detector, "detect_video", None)
    if method is not None:
        return iter(method(frames))
    return (detector.detect(frame) for frame in frames)
