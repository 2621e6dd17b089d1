"""The avatar creator: every control stays inside what the generator draws, the card keeps the whole
look, the green screen is a flat key colour, and a creator avatar streams through its own rig."""
from __future__ import annotations

import dataclasses
import wave

import numpy as np
import pytest

from engine.toon import identity as gen
from engine.toon import random_identity, render_portrait
from engine.toon.chroma import KEY_COLOURS, conflict_message, conflicts, safe_keys
from engine.toon.creator import (CONTROLS, check_identity, identity_from_card, identity_to_card, problems, reroll,
                                 sample_creator, set_control, set_key)
from tests.fixtures_qt import quiet_settings, ui_home  # noqa: F401  (fixture)


def test_every_seed_the_generator_draws_is_a_look_the_creator_accepts():
    assert [s for s in range(300) if problems(random_identity(s))] == []


@pytest.mark.parametrize("control", [c for c in CONTROLS if c.kind in ("choice", "colour")], ids=lambda c: c.name)
def test_every_option_of_every_control_is_accepted(control):
    base = random_identity(4)
    for value in control.options:
        if control.name in ("bg_a", "bg_b") or (control.name == "background" and value == "chroma"):
            continue   # pattern colours of a patterned background, the key by set_key: both below
        assert getattr(set_control(base, control.name, value), control.name) == value


def test_a_size_outside_the_trained_range_is_refused_with_the_range():
    with pytest.raises(ValueError, match=r"face_width 0.5 is outside 0.21..0.26"):
        set_control(random_identity(1), "face_width", 0.5)


def test_a_hand_edited_colour_the_generator_never_uses_is_refused():
    card = identity_to_card(random_identity(2))
    card["eye_colour"] = [0, 255, 0]
    with pytest.raises(ValueError, match="eye_colour"):
        identity_from_card(card)


def test_skin_brings_its_lip_colour_along():
    ident = set_control(random_identity(3), "skin", gen.SKIN_TONES[0])
    assert ident.lip == gen.lip_for(gen.SKIN_TONES[0])


def test_per_control_random_changes_only_that_control():
    base = random_identity(9)
    rng = np.random.default_rng(0)
    changed = {f.name for f in dataclasses.fields(base)
               if any(getattr(reroll(base, "hair_style", rng), f.name) != getattr(base, f.name) for _ in range(5))}
    assert changed == {"hair_style"}


def test_creator_samples_mix_controls_and_stay_in_range():
    looks = [sample_creator(s) for s in range(40)]
    assert all(not problems(i) for i in looks)
    assert any(i.background == "chroma" for i in looks)
    assert any(i != random_identity(i.seed) for i in looks)


def test_green_screen_is_one_flat_key_colour_in_the_portrait():
    ident = set_key(random_identity(6), "green")
    check_identity(ident)
    portrait = render_portrait(ident, 256)
    assert tuple(portrait[2, 2]) == KEY_COLOURS["green"] and tuple(portrait[250, 3]) == KEY_COLOURS["green"]
    # the avatar itself (the middle of the face) is not the key colour
    assert tuple(portrait[128, 128]) != KEY_COLOURS["green"]


def test_a_key_colour_too_close_to_the_clothes_names_them_and_a_better_key():
    ident = set_key(set_control(random_identity(0), "shirt", (51, 242, 51)), "green")   # a green the generator draws
    assert "clothes" in conflicts(ident, KEY_COLOURS["green"])
    message = conflict_message(ident)
    assert "clothes" in message and "magenta" in message
    assert conflict_message(set_key(ident, "magenta")) is None
    assert safe_keys(ident)[0] != "green"


def test_the_card_stores_every_field_and_gives_back_the_same_look():
    ident = set_key(sample_creator(11), "blue")
    assert identity_from_card(identity_to_card(ident)) == ident


def test_library_keeps_a_creator_look_and_a_seed_only_cartoon_stays_seed_only(ui_home):
    from avatarcam.avatars import AvatarLibrary
    lib = AvatarLibrary()
    look = set_control(set_key(random_identity(8), "green"), "hair_style", "bun")
    made = lib.new_cartoon(identity=look, name="Mine")
    again = lib.get("Mine")
    assert again.identity() == look and again.seed == 8
    assert np.array_equal(again.load_image(), render_portrait(look, 512))
    plain = lib.new_cartoon(seed=8, name="Plain")
    assert plain.look is None and "look" not in (plain.folder / "avatar.yaml").read_text()
    assert plain.identity() == random_identity(8) and made.identity() != plain.identity()


def test_cli_builds_a_look_control_by_control(ui_home, capsys):
    from avatarcam.avatars import AvatarLibrary
    from avatarcam.cli import main
    assert main(["--settings", str(ui_home.settings_path), "avatars", "new", "--seed", "5", "--look", "hair_style=bun",
                 "--look", "skin=2", "--key", "green", "--name", "Cli"]) == 0
    ident = AvatarLibrary().get("Cli").identity()
    assert ident.hair_style == "bun" and ident.skin == gen.SKIN_TONES[2] and ident.background == "chroma"
    assert main(["--settings", str(ui_home.settings_path), "avatars", "new", "--look", "face_width=0.5"]) != 0
    assert "0.21..0.26" in capsys.readouterr().err


def test_a_creator_avatar_streams_through_its_rig(ui_home, tmp_path):
    """The session on the shipped model with a creator-made avatar (green screen, hair changed) as the
    current one: the engine recognises its stored look and draws it with the rig."""
    from avatarcam.avatars import AvatarLibrary
    from avatarcam.session import Session
    from avatarcam.stream_options import stream_options

    look = set_control(set_key(random_identity(12), "green"), "hair_style", "curly")
    AvatarLibrary().new_cartoon(identity=look, name="Creator")
    wav = tmp_path / "speech.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        t = np.arange(16000 * 2) / 16000
        w.writeframes((3000 * np.sin(2 * np.pi * 180 * t)).astype(np.int16).tobytes())
    settings = quiet_settings()
    settings.avatar.current = "Creator"
    options = stream_options(settings)
    assert options.avatar_identity == look
    options.audio_file, options.camera, options.obs = wav, False, False
    session = Session(settings, options)
    session.start()
    try:
        assert session.stream.decoder.rigged
        assert session.wait(120)
    finally:
        session.stop()


def test_a_green_screen_avatar_talks_as_wide_as_the_same_avatar_without_one():
    """The model never learned key colours (anchored on one it mouths about half as wide), so it is
    anchored on the avatar's own background and the rig draws the key: the same speech gives the
    same mouth, on a flat green background."""
    from avatarcam.demo import demo_voice
    from engine.card import MODELS_DIR, load_card
    from engine.stream import AvatarStream

    speech = demo_voice(3.0)
    plain = random_identity(101000)
    keyed = set_key(plain, "green")
    card = load_card(MODELS_DIR / "toon")
    mouths, last = [], []
    for ident in (plain, keyed):
        stream = AvatarStream(card, seed=0)
        stream.start(render_portrait(ident, card.width), identity=ident)
        assert stream.decoder.rigged
        jaw, chunk = [], stream.frames_per_block * 640
        for a in range(0, len(speech), chunk):
            frames = stream.push_audio(speech[a:a + chunk])
            jaw += [c.mouth_open for c in stream.decoder._rig.last_controls] if frames else []
        mouths.append(jaw)
        last.append(frames[-1])
    assert mouths[0] == mouths[1] and max(mouths[0]) > 0.2
    assert tuple(last[1][4, 4]) == KEY_COLOURS["green"] and tuple(last[0][4, 4]) != KEY_COLOURS["green"]
