"""Scoring files.

- `scorer`: the `Scorer`, the one policy that turns a file into a calibrated fake probability (frames,
  faces, batches, calibration, aggregation), shared by predict, evaluate, calibrate, explain and probes;
- `detector`: the `Detector`, files in and `FileResult`s out, running the scorer's steps in worker threads;
- `results`: `FileResult`, the one result type of a scored file, and its JSON/JSON-lines/CSV writers;
- `predict`: what `deepfake-hf predict` does (formats and the table, `--out` streaming, `--resume`,
  data-parallel merging, the Hub reachability check);
- `explain`: heatmaps of where a detector looks.
"""
