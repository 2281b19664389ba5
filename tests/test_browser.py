"""The Gradio app in a real headless browser: Debian's chromium driven by Playwright.

Skipped, with the reason printed in pytest's summary, when Playwright or chromium is missing
(`pip install playwright`; `apt-get install chromium`). The screenshot lands in test-artifacts/.
"""

import os
import shutil

import pytest

from tests.app_server import running_app
from tests.conftest import PROJECT_ROOT, tiny_detector

pytestmark = pytest.mark.slow  # a browser and the app's server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = PROJECT_ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    if not os.path.isfile(CHROMIUM):
        pytest.skip(f"chromium not found at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def face_photo(path):
    """A public-domain portrait (scikit-image's astronaut) so face detection has a face to box."""
    data = pytest.importorskip("skimage.data")
    from PIL import Image

    Image.fromarray(data.astronaut()).save(path)
    return path


def test_upload_an_image_and_see_a_verdict(browser, tmp_path):
    tiny_detector("vit", seed=4).save_pretrained(tmp_path / "model")
    photo = face_photo(tmp_path / "astronaut.png")
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "app-image-verdict.png"
    screenshot.unlink(missing_ok=True)

    with running_app(tmp_path / "model", {"DEEPFAKE_HF_FACES": "auto"}) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(url, wait_until="networkidle", timeout=120_000)  # a loaded CI machine took over 30 s
        assert page.title() == "Deepfake detector"
        page.locator("#image-input input[type=file]").set_input_files(str(photo))
        page.locator("#image-input img").first.wait_for(timeout=30_000)  # the upload is previewed
        page.locator("#image-button").click()
        verdict = page.locator("#image-verdict")
        verdict.get_by_text("fake probability").wait_for(timeout=90_000)
        text = verdict.inner_text()
        assert ("FAKE" in text or "REAL" in text) and "%" in text
        assert "Could not analyse" not in text
        page.get_by_text("Where the model looked").first.wait_for(timeout=10_000)
        page.wait_for_timeout(1000)  # let the label bar and images finish rendering
        page.screenshot(path=str(screenshot), full_page=True)
        page.get_by_role("tab", name="About").click()  # the model summary and the limitations
        page.get_by_text("signal for a human reviewer, never proof").wait_for(timeout=10_000)
        assert "at least 0.5" in page.inner_text("body")
        page.close()
    assert screenshot.stat().st_size > 10_000
    print(f"screenshot: {screenshot}")
