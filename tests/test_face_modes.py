"""faces/ registry: a face mode is one module file, seen by every place that lists or uses modes."""

import importlib
import subprocess
import sys
import textwrap

import pytest

from deepfake_hf import faces
from deepfake_hf.faces import base

TOY_MODULE = "toy_mode"
TOY = textwrap.dedent('''
    """A toy face mode: the whole image is one face, cut with a margin only."""

    from deepfake_hf.faces.base import Face, FaceMode, register


    @register
    class ToyMode(FaceMode):
        name = "toy"
        description = "the whole image as one face"
        order = 30
        crops = ("margin",)

        def detect(self, image):
            return [Face(box=(0, 0, image.width, image.height))]
''')


@pytest.fixture
def toy_mode(tmp_path, monkeypatch):
    """The toy mode as a new module file of the faces package (a folder added to its __path__)."""
    (tmp_path / f"{TOY_MODULE}.py").write_text(TOY)
    importlib.invalidate_caches()
    monkeypatch.setattr(faces, "__path__", [*faces.__path__, str(tmp_path)])
    monkeypatch.setattr(base, "_MODES", dict(base._MODES))  # what the toy registers goes when the test ends
    yield "toy"
    sys.modules.pop(f"{faces.__name__}.{TOY_MODULE}", None)
    if hasattr(faces, TOY_MODULE):
        delattr(faces, TOY_MODULE)


def faces_option(command):
    from deepfake_hf import cli

    parser = cli.build_parser()
    sub = parser._subparsers._group_actions[0].choices[command]
    return next(action for action in sub._actions if "--faces" in action.option_strings)


def test_the_built_in_modes_in_order_and_what_auto_picks(monkeypatch):
    assert faces.face_mode_names() == ("auto", "dlib", "deepfakebench", "deepfakebench-fast", "gend", "none")
    monkeypatch.setattr("deepfake_hf.faces.dlib.dlib_available", lambda: True)
    assert faces.face_mode("auto") is faces.DlibFaceDetector
    monkeypatch.setattr("deepfake_hf.faces.dlib.dlib_available", lambda: False)
    assert faces.face_mode("auto") is faces.NoFaceDetector
    assert faces.prefer_recorded("auto", "deepfakebench") == "deepfakebench"
    assert faces.prefer_recorded(None, "deepfakebench") == "deepfakebench"
    assert faces.prefer_recorded(None, None) == "none" and faces.prefer_recorded("auto", None) == "auto"
    assert faces.prefer_recorded("dlib", "deepfakebench") == "dlib"
    names = "auto, dlib, deepfakebench, deepfakebench-fast, gend, none"
    with pytest.raises(faces.FaceError, match=f"'mtcnn' is not one of {names}"):
        faces.face_mode("mtcnn")


def test_mode_properties():
    deepfakebench, dlib, none = (faces.face_mode(name) for name in ("deepfakebench", "dlib", "none"))
    assert (deepfakebench.frame_sampling, dlib.frame_sampling, none.frame_sampling) == ("deepfakebench", "even", "even")
    assert deepfakebench.crops == ("align",) and dlib.crops == faces.FACE_CROPS
    assert not none.finds_faces and dlib.finds_faces and deepfakebench.finds_faces
    assert faces.frame_sampling_of(faces.NoFaceDetector()) == "even"
    assert faces.finds_faces(object()) and faces.frame_sampling_of(object()) == "even"  # a duck-typed detector


def test_the_models_face_preprocessings_are_the_registrys_recorded_modes():
    """configuration_deepfake.py is remote code and cannot import the registry: its literal list must match it."""
    from deepfake_hf.configuration_deepfake import FACE_PREPROCESSINGS

    assert tuple(FACE_PREPROCESSINGS) == faces.recorded_face_modes()
    assert set(FACE_PREPROCESSINGS) < set(faces.face_mode_names())


def test_a_name_is_registered_once(monkeypatch):
    monkeypatch.setattr(base, "_MODES", dict(base._MODES))

    class Impostor(base.FaceMode):
        name = "dlib"

    with pytest.raises(faces.FaceError, match="already registered"):
        base.register(Impostor)

    class Auto(base.FaceMode):
        name = "auto"

    with pytest.raises(faces.FaceError, match="needs a name"):
        base.register(Auto)
    base.register(faces.DlibFaceDetector)  # the same class again (a module imported twice) is fine


def test_a_new_mode_file_is_seen_everywhere_names_are(toy_mode, capsys):
    from PIL import Image

    from deepfake_hf.cli import main
    from deepfake_hf.data.datasets import DataSourceError, load_source

    assert faces.face_mode_names() == ("auto", "dlib", "deepfakebench", "deepfakebench-fast", "gend", toy_mode, "none")
    detector = faces.get_face_detector(toy_mode)
    assert detector.name == toy_mode and detector.detect(Image.new("RGB", (8, 6)))[0].box == (0, 0, 8, 6)
    for command in ("predict", "evaluate", "calibrate", "explain"):
        assert toy_mode in faces_option(command).choices, command
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "toy (the whole image as one face)" in help_text
    # callers read the mode's properties: its crops, not its name, decide what load_source accepts
    with pytest.raises(DataSourceError, match="does not apply to faces='toy'"):
        load_source("unused", faces=toy_mode, face_crop="align")


def test_a_registered_subclass_is_a_mode_without_a_file(monkeypatch):
    monkeypatch.setattr(base, "_MODES", dict(base._MODES))

    @base.register
    class Everything(base.FaceMode):
        name = "everything"
        description = "every pixel"

        def detect(self, image):
            return []

    assert "everything" in faces.face_mode_names() and "everything" in faces_option("predict").choices
    assert faces.face_mode("everything") is Everything


def test_importing_faces_loads_no_heavy_library():
    code = ("import sys, deepfake_hf.faces as f; f.face_mode_names(); "
            "print(sorted(m for m in ('cv2', 'dlib', 'torch', 'transformers', 'PIL') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
