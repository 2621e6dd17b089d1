"""The creator on the Avatars page (real Qt, offscreen): each control changes the look and the live
preview, dice change one control, the green screen warns when it would cut into the avatar, and
Create puts exactly that look into the library."""
from __future__ import annotations

import numpy as np

from engine.toon import random_identity, render_portrait
from engine.toon.chroma import KEY_COLOURS
from tests.fixtures_qt import ui_app, ui_home  # noqa: F401


def _creator(app):
    return app.window.pages["avatars"].creator


def _preview(card) -> np.ndarray:
    img = card.preview.pixmap().toImage()
    return np.array([[img.pixelColor(x, y).rgb() for x in range(0, img.width(), 8)] for y in range(0, img.height(), 8)])


def _pick(card, name, data):
    combo = card.controls[name].widget
    i = combo.findData(data)
    assert i >= 0, f"{data!r} not offered for {name}"
    combo.setCurrentIndex(i)
    combo.activated.emit(i)


def test_every_control_has_a_widget_and_shows_the_seed(ui_app):
    card = _creator(ui_app())
    card.set_look(random_identity(21))
    assert card.seed.value() == 21
    hair = card.controls["hair_style"].widget
    assert hair.currentData() == random_identity(21).hair_style


def test_a_choice_changes_the_look_and_the_preview(ui_app):
    card = _creator(ui_app())
    card.set_look(random_identity(3))
    before = _preview(card)
    _pick(card, "hat", "cap" if card.look.hat != "cap" else "bow")
    assert card.look.hat in ("cap", "bow") and not np.array_equal(before, _preview(card))


def test_a_die_changes_only_its_control(ui_app):
    card = _creator(ui_app())
    start = random_identity(4)
    card.set_look(start)
    for _ in range(6):
        card.dice["shirt"].click()
    assert card.look.shirt != start.shirt
    assert card.look.hair == start.hair and card.look.face_shape == start.face_shape


def test_a_green_screen_too_close_to_the_clothes_warns_and_another_key_clears_it(ui_app):
    card = _creator(ui_app())
    card.set_look(random_identity(0))
    card.change("shirt", (51, 242, 51))          # a green the generator draws (not on the palette)
    _pick(card, "background", "chroma:green")
    assert card.look.bg_a == KEY_COLOURS["green"]
    assert "clothes" in card.msg.text() and "magenta" in card.msg.text()
    _pick(card, "background", "chroma:magenta")
    assert card.msg.text() == ""


def test_create_puts_exactly_this_look_in_the_library(ui_app):
    app = ui_app()
    card = _creator(app)
    card.set_look(random_identity(6))
    _pick(card, "hair_style", "bun")
    _pick(card, "background", "chroma:blue")
    card.controls["eye_size"].widget.setValue(100)
    card.name.setText("Made by hand")
    card.cartoon_btn.click()
    avatar = app.controller.library.get("Made by hand")
    assert avatar.identity() == card.look and avatar.identity().hair_style == "bun"
    assert abs(avatar.identity().eye_size - 1.2) < 1e-9
    assert np.array_equal(avatar.load_image(), render_portrait(card.look, 512))
    assert app.window.pages["avatars"].selected().name == "Made by hand"
