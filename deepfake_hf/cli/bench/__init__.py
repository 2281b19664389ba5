"""`deepfake-hf bench`: speed and memory measurements written as JSON.

This package's `__init__` is the command (parsing only, light); `measure.py` runs the benchmarks (and
`faceworkers.py` the face-workers one) and `child.py` is the child process some of them start.
benchmarks/bench_*.py call this command.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from typing import Any

from deepfake_hf.cli.base import EXIT_OK, Command, CommandError, stdout_to_stderr
from deepfake_hf.cli.options import add_frames_option, add_json_option, add_output_option
from deepfake_hf.faces import face_mode_names


class BenchCommand(Command):
    name = "bench"
    order = 130
    help = "speed and memory benchmarks (inference, training, video, face workers, start-up) written as JSON"
    description = ("Random weights of published encoder sizes; nothing is downloaded. Ratios are measured side by "
                   "side in one run. See the README's Performance section.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        kinds = parser.add_subparsers(dest="bench_kind", metavar="KIND", required=True)
        inference = kinds.add_parser("inference", help="pipeline vs Detector vs raw forward, same weights")
        inference.add_argument("--models", default="vit-b16,clip-b32", help="comma list of vit-b16, clip-b32")
        inference.add_argument("--images", type=int, default=32, help="files scored per round")
        inference.add_argument("--rounds", type=int, default=3)
        inference.add_argument("--latency-images", type=int, default=10, help="files timed one by one at batch 1")
        inference.add_argument("--textures", default="smooth,noise",
                               help="JPEG kinds: smooth (photo-like) and/or noise (every pixel random, costly to "
                               "decode)")
        inference.add_argument("--no-peak-memory", action="store_true",
                               help="skip the per-mode fresh-process memory runs")
        training = kinds.add_parser("training", help="LN-tuning vs full fine-tuning vs LoRA step time and memory")
        training.add_argument("--model", default="vit-b16", choices=["vit-b16", "clip-b32"])
        training.add_argument("--methods", default="ln_tuning,full,lora")
        training.add_argument("--batch", type=int, default=8)
        training.add_argument("--steps", type=int, default=3)
        training.add_argument("--rounds", type=int, default=2)
        training.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
        video = kinds.add_parser("video", help="video end to end (decode + faces + model) vs the model alone")
        video.add_argument("videos", nargs="*", help="extra clips (e.g. ../shared/media/videos/ffpp/*/*.mp4)")
        video.add_argument("--model", default="vit-b16", choices=["vit-b16", "clip-b32", "tiny-vit"])
        add_frames_option(video, "32")
        video.add_argument("--batch", type=int, default=8)
        video.add_argument("--no-generated", action="store_true", help="skip the generated 10 s 720p clip")
        video.add_argument("--faces", default="none,dlib-per-frame,dlib,deepfakebench",
                           help="comma list of face modes: none, dlib-per-frame, dlib, deepfakebench (the exact mode)")
        video.add_argument("--rounds", type=int, default=1, help="rounds over all clips and modes (medians kept)")
        exact_faces = kinds.add_parser("exact-faces", help="face mode deepfakebench-fast vs the exact deepfakebench, "
                                       "frame by frame: agreement and CPU time")
        exact_faces.add_argument("videos", nargs="*", help="clips whose frames are compared (e.g. "
                                 "../shared/media/videos/*/*/*.mp4)")
        exact_faces.add_argument("--every", type=int, default=1, help="compare every Nth frame (1: every frame)")
        exact_faces.add_argument("--no-generated", action="store_true",
                                 help="skip the generated frames (0, 1 and several faces, small and large)")
        startup = kinds.add_parser("startup", help="import and --help times, heavy modules imported")
        startup.add_argument("--repeats", type=int, default=5)
        threads = kinds.add_parser("threads", help="two runs sharing the cores: default vs configured threads")
        threads.add_argument("--steps", type=int, default=30)
        threads.add_argument("--rounds", type=int, default=3)
        threads.add_argument("--workload", choices=["forward-loop", "predict"], default="forward-loop",
                             help="forward-loop: a predict-like loop, torch default vs configured threads; predict: "
                             "whole `deepfake-hf predict` runs, one alone vs two at once")
        threads.add_argument("--images", type=int, default=48, help="images per predict run (--workload predict)")
        scaleout = kinds.add_parser("scaleout", help="memory vs input count, kill + --resume, 1 vs 2 processes")
        scaleout.add_argument("--small", type=int, default=200, help="inputs of the small memory run")
        scaleout.add_argument("--large", type=int, default=2000,
                              help="inputs of the large memory, resume and scaling runs")
        scaleout.add_argument("--faces", type=int, default=120, help="face images preprocessed with dlib")
        scaleout.add_argument("--rounds", type=int, default=2)
        workers = kinds.add_parser("face-workers", help="face detection in 0 / 1 / 2 worker processes, and whole "
                                   "predict runs: 1 vs 2 workers, one run alone vs two at once")
        workers.add_argument("media", nargs="+", metavar="VIDEO",
                             help="video files or folders of them (e.g. ../shared/media/videos)")
        workers.add_argument("--faces", default="deepfakebench", choices=face_mode_names(),
                             help="face mode (default deepfakebench, the exact mode)")
        add_frames_option(workers, "4")
        workers.add_argument("--rounds", type=int, default=1, help="rounds over the settings (interleaved)")
        workers.add_argument("--settings", default="0,1,2",
                             help="comma list of face worker counts for the in-process runs (0: in the threads)")
        workers.add_argument("--model", default="tiny-vit", choices=["tiny-vit", "vit-b16", "clip-b32"],
                             help="random-weight detector (tiny-vit: the time is decode + faces)")
        workers.add_argument("--parts", default="detector,one-file,predict",
                             help="comma list of detector (one Detector over all videos), one-file (Scorer.plan "
                             "per video), predict (whole predict processes: 1 vs 2 workers, solo vs pair)")
        for kind in (inference, training, video, exact_faces, startup, threads, scaleout, workers):
            # not required by argparse: a missing --out is then one error line naming it, like every other error
            add_output_option(kind, "the JSON file the results are written to", required=False)
            add_json_option(kind, "the results")

    def run(self, args: argparse.Namespace) -> int:
        from deepfake_hf.cli.bench import measure

        if args.out is None:
            raise CommandError("--out FILE is required (where the JSON results are written)")
        _check_inputs(measure, args)
        with stdout_to_stderr(args.json):
            result = _run_kind(measure, args)
        if args.json:
            print(json.dumps(result, indent=2, default=str))
        return EXIT_OK


def _check_comma_list(option: str, text: str, known: Iterable[str]) -> None:
    unknown = [name for name in text.split(",") if name not in known]
    if unknown or not text:
        raise CommandError(f"{option}: {', '.join(unknown) or 'nothing given'}: expected a comma list of "
                           f"{', '.join(known)}")


def _check_inputs(measure: Any, args: argparse.Namespace) -> None:
    """The user's mistakes found before any model is built (a missing clip, an unknown model or method)."""
    from pathlib import Path

    if args.bench_kind == "inference":
        _check_comma_list("--models", args.models, measure.CONFIGS)
        _check_comma_list("--textures", args.textures, measure.TEXTURES)
    elif args.bench_kind == "training":
        from deepfake_hf.training.recipes import TUNING_METHODS

        _check_comma_list("--methods", args.methods, TUNING_METHODS)
    elif args.bench_kind == "exact-faces":
        if args.every < 1:
            raise CommandError(f"--every: {args.every}: expected 1 or more")
    if args.bench_kind in ("video", "exact-faces"):
        for video in map(Path, args.videos):
            if video.is_dir():
                raise CommandError(f"{video}: is a directory, not a video file")
            if not video.is_file():
                raise CommandError(f"{video}: no such file")
        if args.no_generated and not args.videos:
            raise CommandError("no clip to measure: give VIDEOS or leave out --no-generated")
    if args.bench_kind == "video":
        measure.video_face_modes(args.faces)
    elif args.bench_kind == "face-workers":
        _check_face_workers(args)


def _check_face_workers(args: argparse.Namespace) -> None:
    from pathlib import Path

    from deepfake_hf.cli.bench.faceworkers import PARTS, video_files

    for item in map(Path, args.media):
        if not item.exists():
            raise CommandError(f"{item}: no such file or folder")
    if not video_files(args.media):
        raise CommandError(f"{', '.join(args.media)}: no video files there")
    _check_comma_list("--parts", args.parts, PARTS)
    try:
        settings = [int(value) for value in args.settings.split(",")]
    except ValueError:
        settings = [-1]
    if not settings or min(settings) < 0:
        raise CommandError(f"--settings: {args.settings!r}: expected a comma list of worker counts (0 or more)")


def _run_kind(measure: Any, args: argparse.Namespace) -> dict:
    out = args.out
    if args.bench_kind == "inference":
        return measure.run_inference_benchmark(out, args.models.split(","), args.images, args.rounds,
                                               args.latency_images, peak_memory=not args.no_peak_memory,
                                               textures=args.textures.split(","))
    if args.bench_kind == "training":
        return measure.run_training_benchmark(out, args.model, args.methods.split(","), args.batch, args.steps,
                                              args.rounds, args.dtype)
    if args.bench_kind == "video":
        return measure.run_video_benchmark(out, args.model, args.videos, args.frames or 32, args.batch,
                                           generated=not args.no_generated,
                                           face_modes=measure.video_face_modes(args.faces), rounds=args.rounds)
    if args.bench_kind == "exact-faces":
        from deepfake_hf.cli.bench.exact_faces import run_exact_faces_benchmark

        return run_exact_faces_benchmark(out, tuple(args.videos), args.every, generated=not args.no_generated)
    if args.bench_kind == "threads" and args.workload == "predict":
        return measure.run_predict_concurrency_benchmark(out, images=args.images, rounds=args.rounds)
    if args.bench_kind == "threads":
        return measure.run_threads_benchmark(out, steps=args.steps, rounds=args.rounds)
    if args.bench_kind == "face-workers":
        from deepfake_hf.cli.bench.faceworkers import run_face_workers_benchmark

        return run_face_workers_benchmark(out, args.media, faces=args.faces, num_frames=args.frames or 4,
                                          rounds=args.rounds, model=args.model, parts=args.parts.split(","),
                                          settings=[int(value) for value in args.settings.split(",")])
    if args.bench_kind == "scaleout":
        return measure.run_scaleout_benchmark(out, args.small, args.large, args.faces, args.rounds)
    return measure.run_startup_benchmark(out, args.repeats)
