"""The avatar library on disk: real image files made here, real folders, real processes racing."""
from __future__ import annotations

import multiprocessing
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from avatarcam.avatars import THUMB_SIZE, AvatarLibrary, check_name, default_library_root, format_avatars, slugify
from avatarcam.errors import ConfigError
from avatarcam.pictures import IMAGE_SIZE, MIN_SIDE

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


@pytest.fixture
def lib(tmp_path) -> AvatarLibrary:
    return AvatarLibrary(tmp_path / "avatars")


def _picture(path: Path, size=(300, 300), colour=RED, mode="RGB", **save) -> Path:
    Image.new(mode, size, colour).save(path, **save)
    return path


def _leftovers(root: Path) -> list[str]:
    """Anything in the library root except the lock file (a failed add must leave nothing)."""
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir() if p.name != ".lock")


def _pixels(avatar) -> np.ndarray:
    return avatar.load_image().astype(int)


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose IHDR claims a huge size; the pixel data would be a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


# --------------------------------------------------------------------------------------- images

def test_rgba_png_is_composited_on_white(lib, tmp_path):
    img = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    img.paste((255, 0, 0, 255), (50, 50, 150, 150))
    img.save(tmp_path / "cut-out.png")
    px = _pixels(lib.add_image(tmp_path / "cut-out.png"))
    assert px.shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
    assert tuple(px[5, 5]) == WHITE and tuple(px[256, 256]) == RED


def test_jpeg_exif_orientation_is_applied_before_cropping(lib, tmp_path):
    # stored landscape: left half red, right half blue; EXIF 6 = rotate 90° clockwise to display,
    # so the picture is portrait with red on top and blue below
    img = Image.new("RGB", (400, 200), BLUE)
    img.paste(RED, (0, 0, 200, 200))
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(tmp_path / "phone.jpg", quality=95, exif=exif)
    px = _pixels(lib.add_image(tmp_path / "phone.jpg"))
    # portrait crop keeps rows 50..250 of 400: 150 red rows then 50 blue ones -> 3/4 red
    assert np.abs(px[100, 256] - RED).max() < 40 and np.abs(px[480, 256] - BLUE).max() < 40
    assert np.abs(px[100, 20] - px[100, 490]).max() < 40  # no left/right split: it was rotated


def test_palette_gif_with_a_transparent_index_becomes_rgb_on_white(lib, tmp_path):
    img = Image.new("P", (160, 160), 0)
    img.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)  # index 0 (transparent) and 1 (blue)
    img.paste(1, (40, 40, 120, 120))
    img.save(tmp_path / "sprite.gif", transparency=0)
    avatar = lib.add_image(tmp_path / "sprite.gif")
    with Image.open(avatar.image_path) as stored:
        assert stored.mode == "RGB"
    px = _pixels(avatar)
    assert tuple(px[3, 3]) == WHITE and tuple(px[256, 256]) == BLUE


def test_16_bit_greyscale_is_scaled_to_8_bit_not_clipped(lib, tmp_path):
    Image.fromarray(np.full((200, 200), 32768, np.uint16)).save(tmp_path / "scan.png")
    px = _pixels(lib.add_image(tmp_path / "scan.png"))
    assert np.all(np.abs(px - 128) <= 1)


def test_cmyk_jpeg_is_converted_to_rgb(lib, tmp_path):
    _picture(tmp_path / "print.jpg", colour=(0, 255, 255, 0), mode="CMYK", quality=95)  # pure red ink mix
    px = _pixels(lib.add_image(tmp_path / "print.jpg"))
    assert np.abs(px[256, 256] - RED).max() < 30


def test_wide_picture_is_centre_cropped_to_a_square(lib, tmp_path):
    img = Image.new("RGB", (600, 200), BLUE)
    img.paste(RED, (200, 0, 400, 200))  # the middle third is the subject
    img.save(tmp_path / "wide.png")
    avatar = lib.add_image(tmp_path / "wide.png")
    px = _pixels(avatar)
    assert np.abs(px[:, 12:-12] - RED).max() <= 2  # the square is the middle (Lanczos blurs the edge)
    assert np.all(px[:, [0, -1], 0] > 2 * px[:, [0, -1], 2])  # even the edge is mostly red
    with Image.open(avatar.thumb_path) as thumb:
        assert thumb.size == (THUMB_SIZE, THUMB_SIZE) and thumb.mode == "RGB"


def test_tiny_image_is_rejected_naming_its_size_and_the_minimum(lib, tmp_path):
    _picture(tmp_path / "icon.png", size=(32, 32))
    with pytest.raises(ConfigError) as e:
        lib.add_image(tmp_path / "icon.png")
    assert "icon.png" in str(e.value) and "32x32" in str(e.value) and f"{MIN_SIDE} px" in str(e.value)
    assert _leftovers(lib.root) == []


def test_truncated_file_is_rejected_naming_the_file(lib, tmp_path):
    noise = np.random.default_rng(0).integers(0, 255, (400, 400, 3), np.uint8)
    Image.fromarray(noise).save(tmp_path / "whole.png")  # noise: the data cannot be guessed
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError) as e:
        lib.add_image(tmp_path / "cut.png")
    assert "cut.png" in str(e.value) and "truncated" in str(e.value)
    assert _leftovers(lib.root) == []


def test_a_file_that_is_not_an_image_is_rejected(lib, tmp_path):
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(ConfigError, match="not an image format"):
        lib.add_image(tmp_path / "notes.png")


def test_decompression_bomb_header_is_rejected_with_its_dimensions(lib, tmp_path):
    _png_header_only(tmp_path / "bomb.png", 100_000, 100_000)
    with pytest.raises(ConfigError) as e:
        lib.add_image(tmp_path / "bomb.png")
    assert "100000x100000" in str(e.value) and "bomb.png" in str(e.value)
    assert _leftovers(lib.root) == []


def test_image_over_the_pixel_cap_is_rejected_before_decoding(tmp_path):
    small_cap = AvatarLibrary(tmp_path / "avatars", max_pixels=200_000)
    _picture(tmp_path / "blank.png", size=(600, 600), colour=WHITE)
    with pytest.raises(ConfigError) as e:
        small_cap.add_image(tmp_path / "blank.png")
    assert "600x600" in str(e.value) and "200,000" in str(e.value)
    assert _leftovers(small_cap.root) == []


def test_missing_file_is_a_config_error(lib, tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        lib.add_image(tmp_path / "nope.png")


# --------------------------------------------------------------------------------------- library

def test_add_get_list_round_trip_keeps_every_field(lib, tmp_path):
    src = _picture(tmp_path / "me.png", size=(640, 480))
    added = lib.add_image(src, name="Me At Work", prompt="a person in an office")
    got = lib.get("me at work")
    assert got == added and lib.list() == [added]
    assert got.slug == "me-at-work" and got.folder == lib.root / "me-at-work"
    card = yaml.safe_load((got.folder / "avatar.yaml").read_text())
    assert card["name"] == "Me At Work" and card["prompt"] == "a person in an office"
    assert card["source"] == str(src.resolve()) and card["kind"] == "image" and card["created"]
    assert sorted(p.name for p in got.folder.iterdir()) == ["avatar.yaml", "image.png", "thumb.png"]
    assert _leftovers(lib.root) == ["me-at-work"]


def test_automatic_names_come_from_the_file_and_are_numbered_when_taken(lib, tmp_path):
    src = _picture(tmp_path / "my_face.png")
    names = [lib.add_image(src).name for _ in range(3)]
    assert names == ["my face", "my face 2", "my face 3"]


def test_a_name_that_differs_only_in_case_or_punctuation_is_taken(lib, tmp_path):
    src = _picture(tmp_path / "a.png")
    lib.add_image(src, name="Alice")
    for clash in ("alice", "ALICE!", " alice "):
        with pytest.raises(ConfigError, match="already exists"):
            lib.add_image(src, name=clash)
    assert [a.name for a in lib.list()] == ["Alice"]


@pytest.mark.parametrize("bad", ["", "   ", "???", "x" * 65, "con", "tab\tname\x00"])
def test_invalid_names_are_config_errors(lib, tmp_path, bad):
    with pytest.raises(ConfigError):
        lib.add_image(_picture(tmp_path / "a.png"), name=bad)
    assert _leftovers(lib.root) == []


def test_slugs_keep_letters_of_any_script():
    assert slugify("Zoë  Café!") == "zoë-café"
    assert check_name("日本 アバター") == ("日本 アバター", "日本-アバター")


def test_rename_moves_the_folder_and_updates_the_card(lib, tmp_path):
    lib.add_image(_picture(tmp_path / "a.png"), name="Old Name", prompt="p")
    renamed = lib.rename("old name", "New Name")
    assert renamed.slug == "new-name" and not (lib.root / "old-name").exists()
    assert lib.get("New Name").prompt == "p" and lib.get("new-name").name == "New Name"
    assert [a.name for a in lib.list()] == ["New Name"]


def test_rename_to_a_taken_name_fails_and_changes_nothing(lib, tmp_path):
    src = _picture(tmp_path / "a.png")
    lib.add_image(src, name="One")
    lib.add_image(src, name="Two")
    with pytest.raises(ConfigError, match="already exists"):
        lib.rename("One", "two")
    assert [a.name for a in lib.list()] == ["One", "Two"]


def test_rename_that_only_changes_case_keeps_the_folder(lib, tmp_path):
    lib.add_image(_picture(tmp_path / "a.png"), name="bob")
    assert lib.rename("bob", "Bob").folder == lib.root / "bob"
    assert lib.get("bob").name == "Bob"


def test_remove_deletes_the_avatar_and_unknown_names_are_errors(lib, tmp_path):
    lib.add_image(_picture(tmp_path / "a.png"), name="Gone")
    lib.remove("gone")
    assert lib.list() == [] and _leftovers(lib.root) == []
    with pytest.raises(ConfigError, match="no avatar named 'Gone'"):
        lib.remove("Gone")


def test_prompt_and_model_changes_persist(lib, tmp_path):
    lib.add_image(_picture(tmp_path / "a.png"), name="Ann")
    lib.set_prompt("Ann", "smiling, studio light")
    lib.set_model("Ann", "/models/avatarforcing-1.3b")
    fresh = AvatarLibrary(lib.root).get("Ann")
    assert fresh.prompt == "smiling, studio light" and fresh.model == "/models/avatarforcing-1.3b"
    assert lib.set_model("Ann", None).model is None


def test_cartoon_records_its_random_seed_and_the_seed_redraws_it(lib):
    first = lib.new_cartoon()
    assert first.kind == "cartoon" and isinstance(first.seed, int) and first.name == f"Toon {first.seed}"
    again = lib.new_cartoon(seed=first.seed, name="Again")
    assert np.array_equal(first.load_image(), again.load_image())
    assert yaml.safe_load((first.folder / "avatar.yaml").read_text())["seed"] == first.seed


def test_default_on_an_empty_library_is_the_bundled_cartoon_with_its_rig(lib):
    from avatarcam.data import DEFAULT_AVATAR_PNG, DEFAULT_AVATAR_SEED
    from PIL import Image

    avatar = lib.default()
    assert avatar.name == "Default" and avatar.kind == "cartoon" and avatar.seed == DEFAULT_AVATAR_SEED
    assert np.array_equal(avatar.load_image(), np.asarray(Image.open(DEFAULT_AVATAR_PNG).convert("RGB")))
    assert avatar.identity() is not None and avatar.identity().seed == DEFAULT_AVATAR_SEED
    assert lib.default() == avatar and len(lib.list()) == 1


def test_default_prefers_the_current_avatar_when_it_exists(lib, tmp_path):
    src = _picture(tmp_path / "a.png")
    lib.add_image(src, name="Alpha")
    lib.add_image(src, name="Beta")
    assert lib.default("beta").name == "Beta"
    assert lib.default("deleted one").name == "Alpha"


def test_avatarcam_home_sets_the_library_root(monkeypatch, tmp_path):
    monkeypatch.setenv("AVATARCAM_HOME", str(tmp_path / "portable"))
    assert default_library_root() == tmp_path / "portable" / "avatars"
    assert AvatarLibrary().root == tmp_path / "portable" / "avatars"


def test_a_damaged_avatar_folder_is_skipped_not_fatal(lib, tmp_path):
    lib.add_image(_picture(tmp_path / "a.png"), name="Good")
    bad = lib.root / "bad"
    bad.mkdir()
    (bad / "avatar.yaml").write_text("name: [unclosed")
    (bad / "image.png").write_bytes(b"")
    assert [a.name for a in lib.list()] == ["Good"]


def test_format_avatars_marks_the_current_one(lib, tmp_path):
    lib.add_image(_picture(tmp_path / "a.png"), name="Alpha", prompt="hello")
    lib.new_cartoon(seed=7, name="Beta")
    lines = format_avatars(lib.list(), current="beta").splitlines()
    assert lines[0].startswith("  Alpha") and "image (a.png)" in lines[0] and lines[0].endswith("hello")
    assert lines[1].startswith("* Beta") and "cartoon (seed 7)" in lines[1]
    assert "avatarcam avatars new" in format_avatars([])


# --------------------------------------------------------------------------------------- processes

def _add_in_process(root: str, src: str, name: str | None, count: int, barrier, results) -> None:
    lib = AvatarLibrary(root)
    barrier.wait(30)
    out = []
    for _ in range(count):
        try:
            out.append(lib.add_image(src, name=name).slug)
        except ConfigError as e:
            out.append(f"error: {e}")
    results.put(out)


def _race(root: Path, src: Path, name: str | None, count: int) -> list[str]:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_add_in_process, args=(str(root), str(src), name, count, barrier, results))
             for _ in range(2)]
    for p in procs:
        p.start()
    out = results.get(timeout=60) + results.get(timeout=60)
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    return out


def test_two_processes_adding_at_once_get_distinct_complete_avatars(tmp_path):
    src = _picture(tmp_path / "face.png", size=(800, 800))
    root = tmp_path / "avatars"
    slugs = _race(root, src, None, 4)
    assert len(slugs) == 8 and len(set(slugs)) == 8 and not any(s.startswith("error") for s in slugs)
    avatars = AvatarLibrary(root).list()
    assert sorted(a.slug for a in avatars) == sorted(slugs)
    assert {a.name for a in avatars} == {"face"} | {f"face {i}" for i in range(2, 9)}
    assert all(a.image_path.is_file() and a.thumb_path.is_file() for a in avatars)
    assert _leftovers(root) == sorted(slugs)  # no temp folders


def test_two_processes_taking_the_same_name_have_exactly_one_winner(tmp_path):
    src = _picture(tmp_path / "face.png", size=(800, 800))
    root = tmp_path / "avatars"
    out = _race(root, src, "Same", 1)
    assert sorted(out)[1] == "same" and "already exists" in sorted(out)[0]
    assert [a.name for a in AvatarLibrary(root).list()] == ["Same"] and _leftovers(root) == ["same"]
