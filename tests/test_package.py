import subprocess
import sys

import pytest

from .conftest import run_python


@pytest.mark.slow  # fresh process
def test_import_does_not_pull_optional_heavy_modules():
    code = ("import sys, deepfake_hf\n"
            "from deepfake_hf import DeepfakeDetectorConfig, DeepfakeDetectorForImageClassification, export_native\n"
            "heavy = [m for m in ('gradio', 'av', 'dlib', 'matplotlib', 'timm') if m in sys.modules]\n"
            "assert not heavy, heavy\n"
            "print(deepfake_hf.__version__)")
    assert run_python(code).stdout.strip()


@pytest.mark.slow  # fresh process
def test_cli_help_lists_commands():
    result = subprocess.run([sys.executable, "-m", "deepfake_hf.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "export" in result.stdout and "quickstart" in result.stdout
