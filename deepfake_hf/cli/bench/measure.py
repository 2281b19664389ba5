"""Benchmarks: inference (is anything but the model costing time?), training (LN-tuning vs full vs LoRA),
video (decode + faces + model vs the model alone), threads (concurrent runs), scale-out and start-up.
`deepfake-hf bench {inference,training,video,threads,scaleout,startup} --out FILE` runs them (the command is
deepfake_hf/cli/bench/__init__.py); benchmarks/bench_KIND.py are thin wrappers of it, with the same options.

Inference: the same random weights are measured in one run, modes interleaved round by round so
machine noise hits all of them alike:
  (a) plain transformers `pipeline("image-classification")` on the stock class (native export),
  (b) the deepfake-hf model through the same `pipeline(...)`,
  (c) `deepfake_hf.scoring.detector.Detector` over the same files (decode + resize included),
  (d) a raw `model(pixel_values)` forward on preprocessed tensors at the best batch size.
It reports images/s, p50/p95 per-image latency at batch 1, peak RSS per mode (each in its own
process) and the ratios b/a, c/a, c/d.

Training: each method runs in its own fresh process (so peak memory is its own), interleaved over
rounds; the child programs are `deepfake_hf.cli.bench.child`. Every benchmark shows a progress bar
naming its stage on stderr. A step is what the Trainer does per batch: forward with labels (the model's own loss),
backward, AdamW step, zero_grad, on the parameters `training.apply_tuning` leaves trainable.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from deepfake_hf.errors import DeepfakeHFError
from deepfake_hf.scoring.scorer import default_batch_size

# Encoder hyperparameters of the published checkpoints, random weights (nothing is downloaded).
CONFIGS = {
    "vit-b16": dict(backbone_config=dict(model_type="vit", hidden_size=768, num_hidden_layers=12,
                                         num_attention_heads=12, intermediate_size=3072, image_size=224,
                                         patch_size=16), pooling="cls"),
    "clip-b32": dict(backbone_config=dict(model_type="clip_vision_model", hidden_size=768, num_hidden_layers=12,
                                          num_attention_heads=12, intermediate_size=3072, image_size=224,
                                          patch_size=32), pooling="mean"),
    # for the benchmark's own smoke test
    "tiny-vit": dict(backbone_config=dict(model_type="vit", hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                          intermediate_size=37, image_size=32, patch_size=8), pooling="cls"),
}


def command_line(argv=None):
    """This run's command as typed, without local absolute paths (the results are published): the CLI as
    `deepfake-hf`, other absolute paths relative to the working folder."""
    argv = list(sys.argv if argv is None else argv)
    if argv and (Path(argv[0]).name == "deepfake-hf"
                 or Path(argv[0]).parts[-3:] == ("deepfake_hf", "cli", "__main__.py")):
        argv[0] = "deepfake-hf"
    return " ".join(os.path.relpath(arg) if os.path.isabs(arg) else arg for arg in argv)


def machine_description():
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "thread_environment": {name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY",
                                                                       "LOCAL_WORLD_SIZE")},
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def peak_rss_mb():
    """This process's peak resident memory in MB.

    /proc's VmHWM belongs to the current program image; `ru_maxrss` would carry the parent's peak over
    fork + exec, so a small child of a large benchmark process would report the parent's size.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


TEXTURES = ("smooth", "noise")


def write_images(folder, count, size=(640, 480), seed=0, texture="smooth"):
    """JPEG files: "smooth" random fields (compress like photos) or "noise" (every pixel random: ~10x the
    bytes, so decoding costs several times more, as with grainy, detailed or high-ISO photos)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        if texture == "noise":
            image = Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8))
        else:
            small = rng.integers(0, 256, size=(size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
            image = Image.fromarray(small).resize(size, Image.BILINEAR)
        path = Path(folder) / f"{texture}_{index:03d}.jpg"
        image.save(path, quality=90)
        paths.append(str(path))
    return paths


def build_models(name, folder):
    """Save the deepfake-hf model and its native export; return both folders."""
    import torch

    from deepfake_hf import DeepfakeDetectorConfig, DeepfakeDetectorForImageClassification, export_native

    torch.manual_seed(0)
    model = DeepfakeDetectorForImageClassification(DeepfakeDetectorConfig(**CONFIGS[name])).eval()
    custom = Path(folder) / f"{name}-custom"
    native = Path(folder) / f"{name}-native"
    model.save_pretrained(custom)
    export_native(custom, native, overwrite=True)
    return str(custom), str(native)


class Modes:
    """The four ways of scoring the same files, each a callable over a list of paths.

    Only the modes named in `modes` are loaded, so a process can measure one mode's memory alone.
    """

    def __init__(self, custom_dir, native_dir, batch_size, modes="abcd"):
        import torch
        from transformers import AutoImageProcessor, pipeline

        import deepfake_hf
        from deepfake_hf.scoring.detector import Detector

        deepfake_hf.register()
        self.batch_size = batch_size
        self.torch = torch
        if "a" in modes:
            self.stock_pipeline = pipeline("image-classification", model=native_dir)
        if "b" in modes:
            self.our_pipeline = pipeline("image-classification", model=custom_dir)
        if "c" in modes:
            self.detector = Detector.from_pretrained(custom_dir, faces="none", batch_size=batch_size, progress=False)
        if "d" in modes:
            self.model = deepfake_hf.DeepfakeDetectorForImageClassification.from_pretrained(custom_dir).eval()
        self.processor = AutoImageProcessor.from_pretrained(custom_dir)

    def a(self, paths, batch_size=None):
        return self.stock_pipeline(paths, batch_size=batch_size or self.batch_size)

    def b(self, paths, batch_size=None):
        return self.our_pipeline(paths, batch_size=batch_size or self.batch_size)

    def c(self, paths, batch_size=None):
        self.detector.scorer.batch_size = batch_size or self.batch_size
        return self.detector(paths)

    def e(self, paths, batch_size=None):
        """The Detector as a user gets it: its own default batch size, whatever the model's best is."""
        self.detector.scorer.batch_size = batch_size or default_batch_size(self.detector.scorer.device)
        return self.detector(paths)

    def pixel_values(self, paths):
        from PIL import Image

        return self.processor([Image.open(p).convert("RGB") for p in paths], return_tensors="pt")["pixel_values"]

    def d(self, pixel_values, batch_size):
        with self.torch.inference_mode():
            for start in range(0, len(pixel_values), batch_size):
                self.model(pixel_values=pixel_values[start:start + batch_size])


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - start


def progress(total, description):
    """A tqdm bar on stderr whose description names the stage: benchmarks run for minutes between results."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="step", file=sys.stderr, dynamic_ncols=True)


def measure(name, images, rounds, latency_images, tmp, peak_memory=True, texture="smooth"):
    batch_sizes = (1, 4, 8, 16)
    # build + batch sweep + warm-up (a, b, c, e) + rounds x modes + latency per mode + memory per mode
    steps = 1 + len(batch_sizes) + 4 + 5 * rounds + 4 + (4 if peak_memory else 0)
    Path(tmp).mkdir(parents=True, exist_ok=True)
    with progress(steps, f"{name} ({texture} JPEGs)") as bar:

        def stage(text):
            bar.set_description(f"{name}: {text}")

        stage("building models and images")
        custom, native = build_models(name, tmp)
        paths = write_images(tmp, images, texture=texture)
        modes = Modes(custom, native, batch_size=8)
        pixel_values = modes.pixel_values(paths)
        bar.update()
        # (d) best batch size: the limit the hardware sets
        stage("raw forward batch sizes")
        modes.d(pixel_values[:2], 2)  # warm-up
        forward_rates = {}
        for batch_size in batch_sizes:
            forward_rates[batch_size] = len(paths) / timed(modes.d, pixel_values, batch_size)
            bar.update()
        best_batch = max(forward_rates, key=forward_rates.get)
        modes.batch_size = best_batch
        for mode in "abce":  # warm-up each path once
            stage(f"warm-up {mode}")
            getattr(modes, mode)(paths[:2])
            bar.update()
        seconds = {mode: [] for mode in "abcde"}
        for round_index in range(rounds):
            for mode in "abce":
                stage(f"round {round_index + 1}/{rounds} mode {mode}")
                seconds[mode].append(timed(getattr(modes, mode), paths))
                bar.update()
            stage(f"round {round_index + 1}/{rounds} mode d")
            seconds["d"].append(timed(modes.d, pixel_values, best_batch))
            bar.update()
        throughput = {mode: len(paths) / statistics.median(values) for mode, values in seconds.items()}
        latency = {}
        for mode in "abc":
            stage(f"latency at batch 1, mode {mode}")
            per_image = [timed(getattr(modes, mode), [path], batch_size=1) * 1000 for path in paths[:latency_images]]
            latency[mode] = {"p50_ms": float(np.percentile(per_image, 50)),
                             "p95_ms": float(np.percentile(per_image, 95))}
            bar.update()
        stage("latency at batch 1, mode d")
        per_image = [timed(modes.d, pixel_values[i:i + 1], 1) * 1000 for i in range(latency_images)]
        latency["d"] = {"p50_ms": float(np.percentile(per_image, 50)), "p95_ms": float(np.percentile(per_image, 95))}
        scores_a = [next(r["score"] for r in row if r["label"] == "fake") for row in modes.a(paths[:8])]
        scores_c = [r.fake_probability for r in modes.c(paths[:8])]
        bar.update()
        peak = None
        if peak_memory:
            peak = {}
            for mode in "abcd":
                stage(f"peak memory, mode {mode} in a fresh process")
                peak[mode] = peak_rss(name, mode, tmp)
                bar.update()
        stage("done")
    return {
        "model": name,
        "images": len(paths),
        "image_size": "640x480 JPEG",
        "texture": texture,
        "mean_file_kb": float(np.mean([os.path.getsize(p) for p in paths]) / 1024),
        "detector_default_batch": default_batch_size(modes.detector.scorer.device),
        "best_forward_batch": best_batch,
        "forward_images_per_s_by_batch": forward_rates,
        "images_per_s": throughput,
        "latency_batch1": latency,
        "ratios": {
            "b/a": throughput["b"] / throughput["a"],
            "c/a": throughput["c"] / throughput["a"],
            "c/d": throughput["c"] / throughput["d"],
            "e/a": throughput["e"] / throughput["a"],
        },
        "max_abs_score_difference_a_vs_c": float(np.max(np.abs(np.subtract(scores_a, scores_c)))),
        "peak_rss_mb": peak,
    }


class BenchmarkChildError(DeepfakeHFError, RuntimeError):
    """A benchmark child process failed; the message is its last error line."""


def run_child(*args):
    """Run `python -m deepfake_hf.cli.bench.child ARGS` in a fresh process and return its JSON result."""
    result = subprocess.run([sys.executable, "-m", "deepfake_hf.cli.bench.child", *map(str, args)],
                            capture_output=True, text=True, env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"})
    if result.returncode:
        lines = result.stderr.strip().splitlines()
        raise BenchmarkChildError(f"benchmark_child {' '.join(map(str, args))}: "
                                  + (lines[-1] if lines else f"exit code {result.returncode}"))
    return json.loads(result.stdout.strip().splitlines()[-1])


def peak_rss(name, mode, tmp):
    """Peak resident memory (MB) of a fresh process that scores 16 files in one mode (None if it failed)."""
    try:
        return run_child("peak-rss", name, mode, tmp)
    except BenchmarkChildError:
        return None


def run_inference_benchmark(json_path, models=("vit-b16", "clip-b32"), images=32, rounds=3, latency_images=10,
                            peak_memory=True, textures=TEXTURES):
    results = {"benchmark": "inference", "machine": machine_description(), "command": command_line(),
               "modes": {"a": "stock pipeline on the native export", "b": "our model through pipeline",
                         "c": "Detector at the best forward batch", "d": "raw forward on preprocessed tensors",
                         "e": "Detector at its default batch (scoring.default_batch_size)"},
               "load_before": os.getloadavg(), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            for texture in textures:
                run = measure(name, images, rounds, latency_images, Path(tmp) / texture, peak_memory, texture)
                results["runs"].append(run)
                print(f"{name} ({texture}): images/s "
                      + ", ".join(f"{m} {v:.2f}" for m, v in run["images_per_s"].items())
                      + " | " + ", ".join(f"{k} {v:.3f}" for k, v in run["ratios"].items()))
    results["load_after"] = os.getloadavg()
    _write(json_path, results)
    return results


def _write(json_path, results):
    Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(json_path).write_text(json.dumps(results, indent=2))
    print(f"wrote {json_path}")


def run_method(model_name, method, batch, steps, dtype):
    """One tuning method's step times and memory, measured in its own fresh process."""
    return run_child("train-steps", model_name, method, batch, steps, dtype)


def run_training_benchmark(json_path, model="vit-b16", methods=("ln_tuning", "full", "lora"), batch=8, steps=3,
                           rounds=2, dtype="fp32"):
    methods = list(methods)
    runs = {method: [] for method in methods}
    with progress(rounds * len(methods), f"{model} training") as bar:
        for round_index in range(rounds):
            for method in methods:
                bar.set_description(f"{model} training: round {round_index + 1}/{rounds} {method}")
                runs[method].append(run_method(model, method, batch, steps, dtype))
                bar.update()
    summary = {}
    for method, results in runs.items():
        step = statistics.median(t for result in results for t in result["step_times"])
        summary[method] = {
            "step_seconds": step,
            "images_per_s": batch / step,
            "peak_memory_mb": max(result["peak_memory_mb"] for result in results),
            # on CPU the process's own footprint (Python, torch, libraries) is a large constant: the
            # training itself costs the peak above it
            "peak_memory_above_baseline_mb": max(result["peak_memory_mb"] - (result["baseline_rss_mb"]
                                                 if result["device"] == "cpu" else 0) for result in results),
            "trainable_params": results[0]["trainable_params"],
            "trainable_fraction": results[0]["trainable_fraction"],
            "device": results[0]["device"],
        }
    ratios = {}
    if "full" in summary:
        for method in methods:
            if method != "full":
                ratios[f"{method}/full"] = {
                    "step_time": summary[method]["step_seconds"] / summary["full"]["step_seconds"],
                    "peak_memory": summary[method]["peak_memory_mb"] / summary["full"]["peak_memory_mb"],
                    "peak_memory_above_baseline": (summary[method]["peak_memory_above_baseline_mb"]
                                                   / summary["full"]["peak_memory_above_baseline_mb"]),
                }
    results = {"benchmark": "training", "machine": machine_description(), "command": command_line(),
               "model": model, "batch": batch, "dtype": dtype,
               "memory_measure": "peak RSS of the process (CPU) / peak CUDA allocation (GPU); "
                                 "above_baseline subtracts the RSS after imports, before the model (CPU)",
               "methods": summary, "ratios": ratios,
               "targets": {"ln_tuning/full peak_memory": "<= 0.6", "ln_tuning/full step_time": "<= 0.8"}}
    print(f"{'method':12s} {'step s':>8s} {'img/s':>7s} {'peak MB':>9s} {'trainable':>10s}")
    for method, row in summary.items():
        print(f"{method:12s} {row['step_seconds']:8.2f} {row['images_per_s']:7.2f} {row['peak_memory_mb']:9.0f} "
              f"{row['trainable_fraction']:10.4%}")
    for name, ratio in ratios.items():
        print(f"{name}: step time x{ratio['step_time']:.2f}, peak memory x{ratio['peak_memory']:.2f} "
              f"(above the import baseline x{ratio['peak_memory_above_baseline']:.2f})")
    _write(json_path, results)
    return results


# ------------------------------------------------------------------------------------------------ video
def write_face_video(path, seconds=10, size=(1280, 720), fps=25):
    """An H.264 clip of a real face (scikit-image's astronaut) drifting across a textured 720p frame."""
    import av
    from PIL import Image
    from skimage import data

    face = Image.fromarray(data.astronaut()).crop((120, 0, 400, 300)).resize((240, 260))
    rng = np.random.default_rng(0)
    background = Image.fromarray(rng.integers(0, 256, size=(size[1] // 20, size[0] // 20, 3), dtype=np.uint8))
    background = background.resize(size, Image.BILINEAR)
    frames = int(seconds * fps)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "23", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for index in range(frames):
            canvas = background.copy()
            x = int((size[0] - face.width) * index / max(frames - 1, 1))
            canvas.paste(face, (x, (size[1] - face.height) // 2))
            for packet in stream.encode(av.VideoFrame.from_image(canvas)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


# Face modes of the video benchmark. "dlib-per-frame" is `detect` on every frame (what the Detector did
# before `faces.detect_video`); "dlib" is the video-aware detection (key frames + windows around the faces);
# "deepfakebench" is the exact mode converted detectors use by default (full-resolution dlib on every frame).
VIDEO_FACE_MODES = ("none", "dlib-per-frame", "dlib", "deepfakebench")


def video_face_modes(text):
    """The face modes of a comma list (`deepfake-hf bench video --faces`), checked against VIDEO_FACE_MODES."""
    from deepfake_hf.errors import DeepfakeHFError

    modes = tuple(mode.strip() for mode in text.split(",") if mode.strip())
    unknown = [mode for mode in modes if mode not in VIDEO_FACE_MODES]
    if unknown or not modes:
        raise DeepfakeHFError(f"--faces: {', '.join(unknown) or 'nothing given'}: expected a comma list of "
                              f"{', '.join(VIDEO_FACE_MODES)}")
    return modes


def _video_detector(model_dir, face_mode, num_frames, batch_size):
    """The Detector of one face mode: none, dlib as the Detector uses it (faces.detect_video: key frames and
    windows around followed faces) or dlib-per-frame (a full search of every frame, as before detect_video)."""
    from deepfake_hf.faces import DeepfakeBenchFaceDetector, DlibFaceDetector
    from deepfake_hf.scoring.detector import Detector

    faces = {"none": lambda: "none", "dlib": DlibFaceDetector, "deepfakebench": DeepfakeBenchFaceDetector,
             "dlib-per-frame": lambda: DlibFaceDetector(keyframe_interval=1)}
    return Detector.from_pretrained(model_dir, faces=faces[face_mode](), num_frames=num_frames,
                                    batch_size=batch_size, progress=False)


def _stage_seconds(face_detector):
    """A copy of a detector's per-stage {stage: {"wall_s", "cpu_s", "calls"}} (DeepfakeBenchFaceDetector only)."""
    stages = getattr(face_detector, "stage_times", None)
    if stages is None:
        return None
    return {name: {"wall_s": wall, "cpu_s": cpu, "calls": calls} for name, (wall, cpu, calls) in stages.items()}


def measure_video(model_dir, videos, num_frames=32, batch_size=8, face_modes=VIDEO_FACE_MODES, rounds=1):
    """End-to-end `Detector` time per video vs the model alone on as many inputs; plus the split.

    Face modes are interleaved per video (and rounds repeat that), so load on the machine hits them alike;
    times are medians over rounds.
    """
    import torch

    from deepfake_hf.faces import frame_sampling_of, get_face_detector
    from deepfake_hf.media import read_video_frames

    detectors = {mode: _video_detector(model_dir, mode, num_frames, batch_size) for mode in face_modes}
    for detector in detectors.values():
        detector([videos[0]])  # warm-up
    face_detector = get_face_detector("dlib") if any(mode.startswith("dlib") for mode in face_modes) else None
    times = {}
    bar = progress(rounds * len(face_modes) * len(videos), "video")
    for round_index in range(rounds):
        for video in videos:
            for face_mode, detector in detectors.items():
                bar.set_description(f"video: round {round_index + 1}/{rounds} faces={face_mode} {Path(video).name}")
                bar.update()
                stage_detector = getattr(detector.scorer.face_detector, "stage_times", None)
                if stage_detector is not None:
                    stage_detector.clear()
                start, cpu = time.perf_counter(), time.process_time()
                result = detector([video])[0]
                end_to_end, end_to_end_cpu = time.perf_counter() - start, time.process_time() - cpu
                stages = _stage_seconds(detector.scorer.face_detector)
                if result.error:
                    times[video, face_mode] = {"video": Path(video).name, "faces": face_mode, "error": result.error}
                    continue
                size = detector.scorer.model.config.image_size
                inputs = torch.randn(result.frames, 3, size, size)
                start, cpu = time.perf_counter(), time.process_time()
                with torch.inference_mode():
                    for first in range(0, len(inputs), batch_size):
                        detector.scorer.model(pixel_values=inputs[first:first + batch_size])
                model_only, model_only_cpu = time.perf_counter() - start, time.process_time() - cpu
                start, cpu = time.perf_counter(), time.process_time()
                frames = read_video_frames(video, num_frames, sampling=frame_sampling_of(detector.scorer.face_detector))
                decode, decode_cpu = time.perf_counter() - start, time.process_time() - cpu
                detect, detect_cpu = _face_detection_alone(face_mode, face_detector, detector, frames)
                row = times.setdefault((video, face_mode), {
                    "video": Path(video).name, "faces": face_mode, "frames": result.frames,
                    "people": result.faces, "frames_with_faces": result.frames_with_faces,
                    "resolution": f"{frames[0].width}x{frames[0].height}", "ratio_per_round": [],
                    "cpu_ratio_per_round": [], "end_to_end_s": [], "model_only_s": [], "decode_alone_s": [],
                    "face_detection_alone_s": [], "end_to_end_cpu_s": [], "model_only_cpu_s": [],
                    "decode_alone_cpu_s": [], "face_detection_alone_cpu_s": [], "stages_per_round": []})
                if "error" in row:
                    continue
                row["ratio_per_round"].append(model_only / end_to_end)
                row["cpu_ratio_per_round"].append(model_only_cpu / end_to_end_cpu)
                for key, value in (("end_to_end_s", end_to_end), ("model_only_s", model_only),
                                   ("decode_alone_s", decode), ("face_detection_alone_s", detect),
                                   ("end_to_end_cpu_s", end_to_end_cpu), ("model_only_cpu_s", model_only_cpu),
                                   ("decode_alone_cpu_s", decode_cpu), ("face_detection_alone_cpu_s", detect_cpu)):
                    row[key].append(value)
                if stages is not None:
                    row["stages_per_round"].append(stages)
                bar.write(f"{row['video']:>22s} faces={face_mode:14s} end-to-end {end_to_end:6.2f} s, "
                          f"model only {model_only:6.2f} s -> x{model_only / end_to_end:.2f} (decode {decode:.2f} s"
                          + (f", detect {detect:.2f} s)" if detect is not None else ")"))
    bar.close()
    rows = []
    for row in times.values():
        if "error" not in row:
            _summarise_rounds(row)
        rows.append(row)
    return rows


def _face_detection_alone(face_mode, face_detector, detector, frames):
    """(wall, CPU) seconds of face detection alone on the decoded `frames`; (None, None) for no face mode."""
    from deepfake_hf.faces import detect_video

    if face_mode == "none":
        return None, None
    start, cpu = time.perf_counter(), time.process_time()
    if face_mode == "dlib":
        list(detect_video(face_detector, frames))
    elif face_mode == "dlib-per-frame":
        [face_detector.detect(frame) for frame in frames]
    else:  # the mode's own detector, one frame after another
        [detector.scorer.face_detector.detect(frame) for frame in frames]
    return time.perf_counter() - start, time.process_time() - cpu


def _summarise_rounds(row):
    """Replace a video row's per-round lists by their medians (in place)."""
    for key in ("end_to_end_s", "model_only_s", "decode_alone_s", "face_detection_alone_s",
                "end_to_end_cpu_s", "model_only_cpu_s", "decode_alone_cpu_s", "face_detection_alone_cpu_s"):
        values = [value for value in row[key] if value is not None]
        row[key] = statistics.median(values) if values else None
    # the ratio of each round (end to end and model alone measured back to back), median over rounds
    row["throughput_vs_model_only"] = statistics.median(row["ratio_per_round"])
    row["cpu_time_throughput_vs_model_only"] = statistics.median(row["cpu_ratio_per_round"])
    if row["stages_per_round"]:  # per frame the stage ran on, median over rounds
        names = row["stages_per_round"][0]
        row["stage_ms_per_call"] = {
            name: {unit: 1000 * statistics.median(r[name][unit + "_s"] / max(r[name]["calls"], 1)
                                                  for r in row["stages_per_round"] if name in r)
                   for unit in ("wall", "cpu")} for name in names}


def run_video_benchmark(json_path, model="vit-b16", videos=(), num_frames=32, batch_size=8, generated=True,
                        face_modes=VIDEO_FACE_MODES, rounds=1):
    """Generated 10 s 720p clip (plus any `videos`, e.g. the shared FF++ clips) with each face mode."""
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        custom, _ = build_models(model, tmp)
        clips = [write_face_video(Path(tmp) / "generated_720p_10s.mp4")] if generated else []
        rows = measure_video(custom, [*clips, *map(str, videos)], num_frames, batch_size, face_modes, rounds)
    summary = {}
    for face_mode in face_modes:
        ok = [row for row in rows if row["faces"] == face_mode and "error" not in row]
        ratios = [row["throughput_vs_model_only"] for row in ok]
        cpu_ratios = [row["cpu_time_throughput_vs_model_only"] for row in ok]
        summary[face_mode] = {"median_throughput_vs_model_only": statistics.median(ratios) if ratios else None,
                              "min": min(ratios) if ratios else None,
                              "by_video": {row["video"]: round(row["throughput_vs_model_only"], 3) for row in ok},
                              "cpu_time_median_throughput_vs_model_only":
                                  statistics.median(cpu_ratios) if cpu_ratios else None,
                              "cpu_time_min": min(cpu_ratios) if cpu_ratios else None,
                              "cpu_time_by_video": {row["video"]: round(row["cpu_time_throughput_vs_model_only"], 3)
                                                    for row in ok}}
    results = {"benchmark": "video", "machine": machine_description(), "command": command_line(),
               "load_average_1_5_15min": {"before": load_before, "after": os.getloadavg()},
               "model": model, "num_frames": num_frames, "batch_size": batch_size, "rounds": rounds,
               "videos": rows, "summary": summary,
               "targets": {"faces none": ">= 0.8x model-only", "faces dlib (720p)": ">= 0.6x model-only"},
               "stage_note": "stage_ms_per_call (deepfakebench mode): wall and CPU milliseconds per call of each step "
                             "of the exact face path inside the end-to-end run (to_array: PIL frame to numpy; "
                             "detection: dlib HOG at upsample 1 on the full frame; landmarks: 68-point predictor; "
                             "warp: cv2.warpAffine; redetection: HOG on the 256 crop)",
               "note": "model-only runs the same number of inputs as the detector scored (one per frame); "
                       "faces 'dlib-per-frame' is detect() on every frame (before), 'dlib' is faces.detect_video "
                       "(after); the modes run interleaved per video in the same process. cpu_time ratios use the "
                       "process's CPU time (all threads) instead of wall time: steadier on a shared machine, blind "
                       "to overlap between decode/faces and the model"}
    _write(json_path, results)
    return results


# ------------------------------------------------------------------------------------------------ threads
THREAD_MODES = {
    # name: (child mode, extra environment)
    "default": ("default", {}),
    "configured": ("configured", {}),
    # two ranks of one job (torchrun / accelerate launch set LOCAL_WORLD_SIZE): one core's budget each
    "configured-2-ranks": ("configured", {"LOCAL_WORLD_SIZE": "2"}),
}


def _clean_thread_environment():
    """This environment without thread settings, so "default" children get torch's defaults."""
    from deepfake_hf.runtime.threads import THREAD_VARIABLES

    drop = {*THREAD_VARIABLES, "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "LOCAL_WORLD_SIZE"}
    return {key: value for key, value in os.environ.items() if key not in drop}


def run_concurrent(mode, copies, steps, delay=10.0):
    """Start `copies` forward-loop children at once (their loops begin together); their JSON results."""
    child_mode, extra = THREAD_MODES[mode]
    env = {**_clean_thread_environment(), **extra, "TRANSFORMERS_VERBOSITY": "error"}
    start_at = time.time() + delay  # time to import torch and warm up before the loops start together
    processes = [subprocess.Popen([sys.executable, "-m", "deepfake_hf.cli.bench.child", "forward-loop", child_mode,
                                   repr(start_at), str(steps)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env) for _ in range(copies)]
    results = []
    for process in processes:
        out, err = process.communicate()
        if process.returncode:
            lines = err.strip().splitlines()
            raise BenchmarkChildError(f"benchmark_child forward-loop {child_mode}: "
                                      + (lines[-1] if lines else f"exit code {process.returncode}"))
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def run_threads_benchmark(json_path, modes=tuple(THREAD_MODES), steps=30, rounds=3, delay=10.0):
    """Concurrent-run slowdown: a predict-like forward loop alone vs two copies at once, per thread mode.

    Modes run interleaved round by round; times are medians over rounds (a pair counts its slower copy).
    """
    load_before = os.getloadavg()
    times = {mode: {"solo": [], "pair": []} for mode in modes}
    details = {mode: None for mode in modes}
    with progress(rounds * len(modes) * 2, "threads") as bar:
        for round_index in range(rounds):
            for mode in modes:
                for kind, copies in (("solo", 1), ("pair", 2)):
                    if kind == "solo" and mode == "configured-2-ranks":
                        bar.update()
                        continue  # one rank alone is not this mode's situation
                    bar.set_description(f"threads: round {round_index + 1}/{rounds} {mode} {kind}")
                    results = run_concurrent(mode, copies, steps, delay)
                    times[mode][kind].append(max(result["seconds"] for result in results))
                    details[mode] = {key: results[0][key] for key in ("threads", "wait_policy", "configured")}
                    bar.update()
    summary = {}
    default_solo = statistics.median(times["default"]["solo"]) if times.get("default", {}).get("solo") else None
    for mode in modes:
        solo = statistics.median(times[mode]["solo"]) if times[mode]["solo"] else None
        pair = statistics.median(times[mode]["pair"])
        summary[mode] = {**details[mode], "solo_s": solo, "pair_s": pair,
                         "pair_vs_own_solo": pair / solo if solo else None,
                         "pair_vs_default_solo": pair / default_solo if default_solo else None}
    results = {"benchmark": "threads", "machine": machine_description(), "command": command_line(),
               "load_average_1_5_15min": {"before": load_before, "after": os.getloadavg()},
               "workload": f"{steps} forwards, batch 4 at 224 px, of a random ViT (4 layers, width 256) per process",
               "rounds": rounds, "times_s": times, "summary": summary,
               "target": "two concurrent runs each take <= ~2.5x their solo time",
               "note": "a pair's time is its slower copy's loop time; both loops start at the same wall-clock time "
                       "after imports and warm-up; 'default' is torch's own thread settings, 'configured' calls "
                       "threads.configure_threads() before importing torch; 'configured-2-ranks' adds "
                       "LOCAL_WORLD_SIZE=2 as torchrun sets it (compare with the default solo time)"}
    for mode, row in summary.items():
        print(f"{mode:20s} threads {row['threads']} solo {row['solo_s'] or float('nan'):6.2f} s, pair "
              f"{row['pair_s']:6.2f} s -> x{row['pair_vs_default_solo'] or float('nan'):.2f} of the default solo")
    _write(json_path, results)
    return results


PREDICT_CHILD = "import sys; from deepfake_hf.cli import main; sys.exit(main(sys.argv[1:]))"


def run_predict_processes(model_dir, inputs, out_dir, copies, options=("--faces", "none"), env=None):
    """Start `copies` whole `deepfake-hf predict` runs at once (each its own process: imports, model load,
    decode, forward, output) of `inputs` (a path or a list of them) with `options`; returns each one's wall time
    from start to exit. `env`: the children's environment (default: this one without thread settings)."""
    env = {**(_clean_thread_environment() if env is None else env), "TRANSFORMERS_VERBOSITY": "error",
           "HF_HUB_OFFLINE": "1"}
    inputs = [str(inputs)] if isinstance(inputs, (str, os.PathLike)) else [str(path) for path in inputs]
    started, processes = [], []
    for copy in range(copies):
        out = Path(out_dir) / f"predict-{copy}.jsonl"
        out.unlink(missing_ok=True)
        command = [sys.executable, "-c", PREDICT_CHILD, "predict", str(model_dir), *inputs, *options,
                   "--format", "jsonl", "--out", str(out)]
        started.append(time.perf_counter())
        processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                          env=env))
    seconds = [None] * copies
    while any(value is None for value in seconds):
        for index, process in enumerate(processes):
            if seconds[index] is None and process.poll() is not None:
                seconds[index] = time.perf_counter() - started[index]
                if process.returncode:
                    lines = process.stderr.read().strip().splitlines()
                    raise BenchmarkChildError("deepfake-hf predict: " + (lines[-1] if lines else
                                                                          f"exit code {process.returncode}"))
        time.sleep(0.05)
    return seconds


def run_predict_concurrency_benchmark(json_path, model="vit-b16", images=48, rounds=2):
    """Concurrent-run slowdown of the real command: one `deepfake-hf predict` alone vs two at once on the
    same cores (whole processes, start-up included), with the package's thread settings."""
    load_before = os.getloadavg()
    times = {"solo": [], "pair": []}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, _ = build_models(model, tmp)
        folder = Path(tmp) / "images"
        folder.mkdir()
        write_images(folder, images, texture="noise")
        with progress(rounds * 2, "predict solo vs pair") as bar:
            for round_index in range(rounds):
                for kind, copies in (("solo", 1), ("pair", 2)):
                    bar.set_description(f"predict: round {round_index + 1}/{rounds} {kind}")
                    times[kind].append(max(run_predict_processes(model_dir, folder, tmp, copies)))
                    bar.update()
    solo, pair = statistics.median(times["solo"]), statistics.median(times["pair"])
    results = {"benchmark": "concurrency-predict", "machine": machine_description(), "command": command_line(),
               "load_average_1_5_15min": {"before": load_before, "after": os.getloadavg()},
               "workload": f"deepfake-hf predict of {images} noise-textured 640x480 JPEGs with a random {model} "
                           "detector, --faces none, JSONL output; each run a whole process",
               "rounds": rounds, "times_s": times, "solo_s": solo, "pair_s": pair, "pair_vs_solo": pair / solo,
               "target": "two concurrent runs each take <= ~2.5x their solo time",
               "note": "a pair's time is its slower run's, from process start to exit (imports and model load "
                       "included); both start together; threads as the command sets them (threads.configure_threads)"}
    print(f"predict solo {solo:.1f} s, pair {pair:.1f} s -> x{pair / solo:.2f}")
    _write(json_path, results)
    return results


HEAVY = ("torch", "transformers", "gradio", "av", "dlib", "matplotlib", "sklearn", "datasets", "peft")

STARTUP_COMMANDS = {
    "import deepfake_hf": [sys.executable, "-c", "import deepfake_hf"],
    "deepfake-hf --help": [sys.executable, "-m", "deepfake_hf.cli", "--help"],
    "deepfake-hf predict --help": [sys.executable, "-m", "deepfake_hf.cli", "predict", "--help"],
    "import deepfake_hf + model class": [sys.executable, "-c",
                                         "from deepfake_hf import DeepfakeDetectorForImageClassification"],
}

def median_seconds(command, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True, env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"})
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_startup_benchmark(json_path, repeats=5):
    seconds = {}
    with progress(len(STARTUP_COMMANDS) + 1, "start-up") as bar:
        for name, command in STARTUP_COMMANDS.items():
            bar.set_description(f"start-up: {name}")
            seconds[name] = median_seconds(command, repeats)
            bar.update()
        bar.set_description("start-up: heavy modules of the CLI parser")
        imported = run_child("heavy-imports")
        bar.update()
    results = {
        "benchmark": "startup",
        "machine": machine_description(),
        "command": command_line(),
        "median_seconds": seconds,
        "heavy_modules_imported_by_cli_parser": imported,
        "target": "deepfake-hf --help under 2 s",
        "target_met": seconds["deepfake-hf --help"] < 2.0,
    }
    for name, value in seconds.items():
        print(f"{name:40s} {value:6.2f} s")
    print(f"heavy modules imported building the CLI parser: {results['heavy_modules_imported_by_cli_parser']}")
    _write(json_path, results)
    return results


# ------------------------------------------------------------------------------------------ scale-out
def write_face_images(folder, count, size=(640, 480), seed=0):
    """JPEGs with one real face each (scikit-image's astronaut, shifted and scaled over a textured frame)."""
    from PIL import Image
    from skimage import data as skdata

    rng = np.random.default_rng(seed)
    face = Image.fromarray(skdata.astronaut()).crop((140, 20, 340, 230))
    paths = []
    Path(folder).mkdir(parents=True, exist_ok=True)
    for index in range(count):
        frame = Image.fromarray(rng.integers(0, 256, size=(size[1] // 8, size[0] // 8, 3), dtype=np.uint8)).resize(size)
        side = int(rng.integers(150, 220))
        corner = (int(rng.integers(0, size[0] - side)), int(rng.integers(0, size[1] - side)))
        frame.paste(face.resize((side, side)), corner)
        path = Path(folder) / f"face_{index:04d}.jpg"
        frame.save(path, quality=90)
        paths.append(str(path))
    return paths


def _torchrun(processes, *argv):
    """The command that runs `deepfake-hf ARGV` in `processes` ranks (plainly when 1)."""
    if processes == 1:
        return [sys.executable, "-m", "deepfake_hf.cli", *map(str, argv)]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "-m", "deepfake_hf.cli",
            *map(str, argv)]


def _busy_cpu_seconds():
    """CPU seconds the whole machine has spent busy since boot (Linux /proc/stat), or None elsewhere."""
    try:
        with open("/proc/stat") as handle:
            values = [int(value) for value in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


def _timed_run(command, usage=None):
    """Wall seconds of `command`. With a dict `usage`, also fills in "cpu_s" (the CPU time of the command's
    processes) and "others_cpu_s" (CPU time the rest of the machine used meanwhile: other jobs on a shared
    machine, which slow a 2-process run more than a 1-process one)."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy = _busy_cpu_seconds()
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True,
                            env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"})
    seconds = time.perf_counter() - start
    if result.returncode not in (0, 2):
        lines = result.stderr.strip().splitlines()
        raise BenchmarkChildError(f"{' '.join(command[-6:])}: " + (lines[-1] if lines else str(result.returncode)))
    if usage is not None:
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        usage["cpu_s"] = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
        end = _busy_cpu_seconds()
        usage["others_cpu_s"] = None if busy is None or end is None else max(0.0, end - busy - usage["cpu_s"])
    return seconds


def _killed_then_resumed(command, part, stop_after):
    """Start `command`, SIGKILL it once its part file holds `stop_after` lines, then run it with --resume.
    Returns (seconds before the kill, seconds of the resumed run, lines in the part at the kill)."""
    import signal

    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"})
    lines = 0
    while process.poll() is None:
        lines = part.read_bytes().count(b"\n") if part.exists() else 0
        if lines >= stop_after:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    process.wait()
    killed_after = time.perf_counter() - start
    return killed_after, _timed_run([*command, "--resume"]), lines


def run_scaleout_benchmark(json_path, small=200, large=2000, faces=120, rounds=2):
    """Scale-out figures: predict's peak memory at `small` vs `large` inputs (streamed to --out), the cost of
    a kill + --resume against an uninterrupted run, and 1 vs 2 processes (torchrun) for predict and for
    preprocess (dlib face crops of `faces` images). Runs interleave round by round; medians are kept."""
    results = {"benchmark": "scale-out", "machine": machine_description(), "command": command_line(),
               "load_before": os.getloadavg()}
    steps = 2 + rounds * (2 + 2 + 2 + 2)
    with tempfile.TemporaryDirectory() as tmp, progress(steps, "scale-out") as bar:
        tmp = Path(tmp)
        bar.set_description("scale-out: building the model and inputs")
        custom, _ = build_models("tiny-vit", tmp)
        for name, count, seed in (("small", small, 1), ("large", large, 2)):
            (tmp / name).mkdir()
            write_images(tmp / name, count, size=(64, 48), seed=seed)
        bar.update()
        write_face_images(tmp / "faces" / "real", faces // 2, seed=3)
        write_face_images(tmp / "faces" / "fake", faces - faces // 2, seed=4)
        bar.update()
        memory = {small: [], large: []}
        full, resumed, scaling, preprocess = [], [], {1: [], 2: []}, {1: [], 2: []}
        preprocess_runs = {1: [], 2: []}
        predict_args = ["--faces", "none", "--format", "jsonl"]
        for round_index in range(rounds):
            for count in (small, large):
                bar.set_description(f"scale-out: round {round_index + 1}/{rounds} memory, {count} inputs")
                folder = tmp / ("small" if count == small else "large")
                memory[count].append(run_child("predict-peak", custom, folder, *predict_args, "--out",
                                               tmp / f"memory-{count}.jsonl", "--overwrite")["peak_rss_mb"])
                bar.update()
            bar.set_description(f"scale-out: round {round_index + 1}/{rounds} uninterrupted predict")
            out = tmp / "full.jsonl"
            full.append(_timed_run([*_torchrun(1, "predict", custom, tmp / "large", *predict_args, "--out", out,
                                               "--overwrite")]))
            bar.update()
            bar.set_description(f"scale-out: round {round_index + 1}/{rounds} kill at half, --resume")
            killed = tmp / "killed.jsonl"
            killed.unlink(missing_ok=True)
            part = killed.with_name(killed.name + ".part-00000-of-00001")
            part.unlink(missing_ok=True)
            before, after, at_kill = _killed_then_resumed(
                _torchrun(1, "predict", custom, tmp / "large", *predict_args, "--out", killed), part, large // 2)
            same = killed.read_text() == out.read_text()
            resumed.append({"killed_after_s": before, "resumed_s": after, "results_at_kill": at_kill,
                            "same_output": same})
            bar.update()
            for processes in (1, 2):
                bar.set_description(f"scale-out: round {round_index + 1}/{rounds} predict, {processes} process(es)")
                scaling[processes].append(_timed_run(_torchrun(processes, "predict", custom, tmp / "large",
                                                               *predict_args, "--out", tmp / f"p{processes}.jsonl",
                                                               "--overwrite")))
                bar.update()
            for processes in (1, 2):
                bar.set_description(f"scale-out: round {round_index + 1}/{rounds} preprocess, {processes} process(es)")
                usage = {"round": round_index + 1}
                usage["seconds"] = _timed_run(_torchrun(processes, "preprocess", tmp / "faces", "--out",
                                                        tmp / f"crops{processes}", "--faces", "dlib", "--overwrite",
                                                        "--frames", "1"), usage)
                preprocess[processes].append(usage["seconds"])
                preprocess_runs[processes].append(usage)
                bar.update()
        median = statistics.median
        results.update({
            "predict_memory": {"inputs": [small, large], "peak_rss_mb": {str(k): median(v) for k, v in memory.items()},
                               "ratio_large_vs_small": median(memory[large]) / median(memory[small]),
                               "target": "within 10% (ratio <= 1.10)"},
            "predict_resume": {"inputs": large, "uninterrupted_s": median(full), "runs": resumed,
                               "killed_plus_resumed_vs_uninterrupted": median(
                                   (r["killed_after_s"] + r["resumed_s"]) for r in resumed) / median(full),
                               "all_outputs_equal": all(r["same_output"] for r in resumed)},
            "predict_scaling": {"inputs": large, "model": "tiny-vit",
                                "seconds": {str(k): median(v) for k, v in scaling.items()},
                                "speedup_2_vs_1": median(scaling[1]) / median(scaling[2])},
            "preprocess_scaling": {"images": faces, "faces": "dlib",
                                   "seconds": {str(k): median(v) for k, v in preprocess.items()},
                                   "speedup_2_vs_1": median(preprocess[1]) / median(preprocess[2]),
                                   "speedup_per_round": [one / two for one, two in zip(preprocess[1], preprocess[2])],
                                   "runs": {str(k): v for k, v in preprocess_runs.items()},
                                   "target": ">= 1.7x on 2 cores"},
            "load_after": os.getloadavg(),
        })
        bar.set_description("scale-out: done")
    for key in ("predict_memory", "predict_resume", "predict_scaling", "preprocess_scaling"):
        print(key, json.dumps({k: v for k, v in results[key].items() if k != "runs"}))
    _write(json_path, results)
    return results
