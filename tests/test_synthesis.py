"""deepfake_hf.data.synthesis: self-blended images and the offline SBI dataset."""

import numpy as np
import pytest
from PIL import Image

from deepfake_hf.data.datasets import load_source
from deepfake_hf.data.synthesis import contact_sheet, face_mask, make_sbi_dataset, public_face_photos, self_blend

from .conftest import PROJECT_ROOT

pytest.importorskip("skimage")


def textured_face(size=64, seed=0, gray=False):
    """A smooth random image with texture (so jitter and blur change pixels)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size] / size
    base = np.stack([120 + 80 * np.sin(6 * xs + c) * np.cos(5 * ys - c) for c in range(3)], axis=2)
    pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    if gray:
        pixels[...] = pixels.mean(axis=2, keepdims=True).astype(np.uint8)
    return Image.fromarray(pixels)


@pytest.mark.parametrize("seed", range(6))
def test_self_blend_changes_only_the_masked_face(seed):
    face = textured_face(seed=seed)
    fake, mask = self_blend(face, np.random.default_rng(seed))
    assert fake.size == face.size and fake.mode == "RGB"
    assert mask.shape == (64, 64) and mask.dtype == np.float32
    assert mask.min() >= 0.0 and mask.max() <= 1.0 and mask.max() >= 0.25
    difference = np.abs(np.asarray(fake, dtype=int) - np.asarray(face, dtype=int)).max(axis=2)
    assert np.all(mask[difference > 0] > 0), "pixels changed outside the mask"
    assert difference[mask > 0.5].mean() > 1.0 if (mask > 0.5).any() else difference.max() > 0
    # The ellipse covers the centre of the crop and none of its corners.
    assert mask[32, 32] > 0 and mask[0, 0] == mask[0, -1] == mask[-1, 0] == mask[-1, -1] == 0


def test_self_blend_is_deterministic_for_a_seed():
    face = textured_face()
    first, mask1 = self_blend(face, np.random.default_rng(7))
    again, mask2 = self_blend(face, 7)
    other, mask3 = self_blend(face, 8)
    assert np.array_equal(np.asarray(first), np.asarray(again)) and np.array_equal(mask1, mask2)
    assert not np.array_equal(np.asarray(first), np.asarray(other)) or not np.array_equal(mask1, mask3)


def test_landmark_hull_mask_follows_the_landmarks():
    # Five points (eyes, nose, mouth corners) of a face in the top-left quadrant of a 96x96 image.
    five = np.array([[20, 20], [40, 20], [30, 30], [22, 40], [38, 40]], dtype=float)
    for seed in range(5):
        mask = face_mask((96, 96), seed, landmarks=five)
        assert mask[30, 30] > 0  # the landmarks' centre (row, column)
        assert mask[80:, :].max() == 0 and mask[:, 80:].max() == 0  # far from the face: untouched
    # Dense landmarks (a 68-point-like outline) give a mask of about the outline's size, not 1.7x.
    angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    outline = np.stack([48 + 20 * np.cos(angles), 48 + 26 * np.sin(angles)], axis=1)
    region = face_mask((96, 96), 0, landmarks=outline) > 0
    rows, cols = np.flatnonzero(region.any(1)), np.flatnonzero(region.any(0))
    assert 40 <= cols[-1] - cols[0] <= 70 and 50 <= rows[-1] - rows[0] <= 85
    fake, _ = self_blend(textured_face(96), 0, landmarks=five)
    assert fake.size == (96, 96)
    with pytest.raises(ValueError, match="at least 3"):
        face_mask((32, 32), 0, landmarks=[[1, 1], [1, 1]])


def test_strength_and_blend_ratios():
    face = textured_face()
    _, full = self_blend(face, 0, blend_ratios=[1.0])
    assert full.max() == pytest.approx(1.0)

    def change(strength):
        total = 0.0
        for seed in range(8):
            fake, mask = self_blend(face, seed, strength=strength, blend_ratios=[1.0])
            total += np.abs(np.asarray(fake, float) - np.asarray(face, float))[mask > 0.9].mean()
        return total / 8

    assert change(0.0) < 1.0 < change(1.0) < change(2.0)  # strength 0: the pasted copy is the face itself


def test_grayscale_faces_stay_gray():
    fake, _ = self_blend(textured_face(gray=True), 3)
    pixels = np.asarray(fake)
    assert np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 1], pixels[..., 2])


def test_public_photos_are_offline_faces():
    photos = public_face_photos()
    names = [name for name, _, _ in photos]
    assert {"astronaut", "camera"} <= set(names) and sum(n.startswith("lfw_") for n in names) == 100
    assert all(image.mode == "RGB" for _, image, _ in photos)


def test_make_sbi_dataset_balanced_with_held_out_identities(tmp_path, capsys):
    splits = make_sbi_dataset(tmp_path / "sbi", size=32, crops_per_photo=4, crops_per_face=1, seed=0)
    assert list(splits) == ["train", "validation", "test"]
    identities = {}
    for name, split in splits.items():
        labels = np.asarray(split["label"])
        assert labels.sum() * 2 == len(labels) > 0, f"{name} is not balanced"
        assert split[0]["image"].size == (32, 32)
        assert set(split["method"]) == {"", "sbi"}
        groups = split["group"]  # a column read decodes it from Arrow: once, not per identity
        identities[name] = set(groups)
        # Every identity contributes as many fakes as reals.
        for identity in identities[name]:
            mine = [label for label, group in zip(labels, groups) if group == identity]
            assert sum(mine) * 2 == len(mine)
    assert not identities["train"] & identities["test"] and not identities["train"] & identities["validation"]
    assert not identities["validation"] & identities["test"]
    assert "astronaut" in identities["train"] and "grace_hopper" in identities["test"]
    assert sum(len(s) for s in splits.values()) == 2 * (3 * 4 + 100 * 1)
    assert 10 <= len(identities["test"]) <= 20
    out = capsys.readouterr().out
    assert "103 identities" in out and "test" in out

    # Written to disk: one manifest per split that load_source reads back with the identity groups.
    test = load_source(tmp_path / "sbi" / "test.csv", cache_dir=False, verbose=False)
    assert len(test) == len(splits["test"]) and set(test["group"]) == set(splits["test"]["group"])
    assert np.array_equal(np.asarray(test[0]["image"]), np.asarray(splits["test"][0]["image"]))
    with pytest.raises(FileExistsError, match="not empty"):
        make_sbi_dataset(tmp_path / "sbi", size=32, crops_per_photo=1, crops_per_face=1, verbose=False)


def test_contact_sheet_artifact():
    """Saves real (top) vs SBI fake (middle) vs mask (bottom) for people to look at."""
    rng = np.random.default_rng(0)
    photos = public_face_photos()
    from deepfake_hf.data.synthesis import _random_face_crop

    picks = photos[:3] + photos[3:8]
    reals = [_random_face_crop(image, box, 128, rng) for _, image, box in picks]
    pairs = [self_blend(real, rng) for real in reals]
    sheet = contact_sheet(reals, [fake for fake, _ in pairs], [mask for _, mask in pairs], tile=128)
    assert sheet.size == (128 * len(picks), 3 * 128)
    folder = PROJECT_ROOT / "test-artifacts"
    folder.mkdir(exist_ok=True)
    sheet.save(folder / "sbi_contact_sheet.png")
    assert Image.open(folder / "sbi_contact_sheet.png").size == sheet.size
