"""Each page of the desktop app changes the settings (saved to a private file) and reports bad input
inline. Offscreen Qt, a private avatar library (AVATARCAM_HOME) and real files throughout."""
from __future__ import annotations

import os
import socket

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QPalette

from avatarcam.config import load_settings
from engine.toon import random_identity
from tests.fixtures_card import random_card  # noqa: F401
from tests.fixtures_qt import portrait_png, quiet_settings, speech_wav, ui_app, ui_home  # noqa: F401


# -- avatars -------------------------------------------------------------------------------------
def test_adding_a_picture_shows_it_and_use_saves_it_as_current(ui_app, ui_home, tmp_path):
    app = ui_app()
    page = app.window.pages["avatars"]
    page.add_image_file(portrait_png(tmp_path / "al.png"))      # first in the list: used by default
    avatar = page.add_image_file(portrait_png(tmp_path / "jo_portrait.png"))
    assert avatar is not None and page.model.rowCount() == 2
    assert page.selected_name() == "jo portrait"
    page.details.use_btn.click()
    assert load_settings(ui_home.settings_path).avatar.current == "jo portrait"
    assert not page.details.use_btn.isEnabled()


def test_an_invalid_image_is_rejected_inline_with_the_reason(ui_app, tmp_path):
    page = ui_app().window.pages["avatars"]
    bad = tmp_path / "notes.png"
    bad.write_text("this is not a picture")
    assert page.add_image_file(bad) is None
    assert page.add_error.isVisibleTo(page) and "notes.png" in page.add_error.text()
    assert page.model.rowCount() == 0


def test_dropping_a_picture_on_the_page_adds_it(ui_app, tmp_path):
    page = ui_app().window.pages["avatars"]
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(portrait_png(tmp_path / "dropped.png")))])
    event = QDropEvent(QPointF(10, 10), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    page.dropEvent(event)
    assert [page.model.item(i).data(Qt.UserRole + 1) for i in range(page.model.rowCount())] == ["dropped"]


def test_reroll_changes_the_seed_and_create_draws_that_cartoon(ui_app):
    page = ui_app().window.pages["avatars"]
    page.creator.seed.setValue(5)
    page.creator.reroll_btn.click()
    seed = page.creator.seed.value()
    assert seed != 5
    page.creator.cartoon_btn.click()
    created = page.selected()
    assert created.kind == "cartoon" and created.seed == seed and created.look is None


def test_rename_and_delete_after_confirmation(ui_app):
    app = ui_app()
    page = app.window.pages["avatars"]
    page.creator.set_look(random_identity(7))
    page.creator.create()
    page.use_selected()
    page.details.name_edit.setText("Kim")
    page.details.prompt_edit.setPlainText("cheerful")
    page.details.save_btn.click()
    lib = app.controller.library
    assert lib.get("Kim").prompt == "cheerful"
    assert app.controller.settings.avatar.current == "Kim"     # renaming the current avatar follows it
    page.details.delete_btn.click()
    assert page.details.confirm.isVisibleTo(page) and "Kim" in page.details.confirm_text.text()
    assert "Kim" in lib                                        # nothing deleted before confirming
    page.details.confirm_yes.click()
    assert "Kim" not in lib and page.model.rowCount() == 0
    assert app.controller.settings.avatar.current is None


def test_renaming_to_a_taken_name_explains_inline(ui_app):
    page = ui_app().window.pages["avatars"]
    page.creator.set_look(random_identity(1))
    page.creator.create()
    page.creator.set_look(random_identity(2))
    page.creator.create()
    page.details.name_edit.setText("Toon 1")
    assert not page.details.rename_selected()
    assert "already exists" in page.details.detail_msg.text()


# -- anchors -------------------------------------------------------------------------------------
def test_anchor_switches_and_preset_are_saved_on_apply(ui_app, ui_home, random_card):
    app = ui_app(settings=quiet_settings(str(random_card)))
    page = app.window.pages["anchors"]
    page.style_anchor.setChecked(False)
    page.audio_zero.setChecked(False)
    page.temporal.setValue(8)
    page.rows["stable"][0].setChecked(True)
    assert load_settings(ui_home.settings_path).anchors.temporal_frames == 2   # nothing before Apply
    page.apply_btn.click()
    saved = load_settings(ui_home.settings_path).anchors
    assert (saved.style_anchor, saved.rope_reindex, saved.anchor_audio_zero) == (False, True, False)
    assert saved.temporal_frames == 8 and saved.preset == "stable"
    assert app.controller.build_options().stream_overrides["passes"] == 2


def test_presets_show_latency_and_cost_from_the_card(ui_app, random_card):
    page = ui_app(settings=quiet_settings(str(random_card))).window.pages["anchors"]
    # test card: 25 fps, B=2, L=4 levels, log-mel look-ahead 20 ms
    _, bln, delay, cost = page.rows["balanced"]
    assert (bln.text(), delay.text(), cost.text()) == ("2 · 4 · 1", "≈ 340 ms", "1.00×")
    _, bln, delay, cost = page.rows["expressive"]     # B=1: 40 ms blocks
    assert (bln.text(), delay.text(), cost.text()) == ("1 · 4 · 1", "≈ 180 ms", "1.00×")
    _, bln, delay, cost = page.rows["stable"]
    assert (delay.text(), cost.text()) == ("≈ 340 ms", "2.00×")


def test_bad_custom_values_are_refused_with_an_explanation(ui_app, ui_home, random_card):
    page = ui_app(settings=quiet_settings(str(random_card))).window.pages["anchors"]
    page.block.setValue(0)
    assert page.rows["custom"][0].isChecked()
    assert not page.apply_btn.isEnabled()
    assert "Block size B must be 1..16" in page.problems.text()
    page.window.setValue(9)
    assert "distilled at 4 noise levels" in page.problems.text()
    assert not page.apply()
    assert not ui_home.settings_path.exists()


def test_custom_block_window_passes_become_stream_overrides(ui_app, ui_home, random_card):
    app = ui_app(settings=quiet_settings(str(random_card)))
    page = app.window.pages["anchors"]
    page.block.setValue(1)
    page.window.setValue(2)
    page.passes.setValue(2)
    assert page.rows["custom"][2].text() == "≈ 100 ms"     # 40 ms x 2 + 20 ms
    assert page.apply()
    again = load_settings(ui_home.settings_path)
    assert again.anchors.preset == "custom"
    app.controller.settings = again
    over = app.controller.build_options().stream_overrides
    assert over["block_frames"] == 1 and over["passes"] == 2
    assert over["timesteps"] == (1000.0, 200.0)


def test_a_missing_model_still_allows_anchor_switches(ui_app, ui_home, tmp_path):
    page = ui_app(settings=quiet_settings(str(tmp_path / "no-model"))).window.pages["anchors"]
    assert "not found" in page.model_error.text()
    page.rope_reindex.setChecked(False)
    assert page.apply()
    assert load_settings(ui_home.settings_path).anchors.rope_reindex is False


# -- devices -------------------------------------------------------------------------------------
def test_camera_and_recording_settings_are_saved(ui_app, ui_home, tmp_path):
    page = ui_app().window.pages["devices"]
    page.resolution.setCurrentIndex(page.resolution.findData("640x360"))
    page.fps.setValue(30)
    page.mirror.setChecked(True)
    page.record.setChecked(True)
    page.record_path.setText(str(tmp_path / "take1.mp4"))
    page.record_path.editingFinished.emit()
    s = load_settings(ui_home.settings_path)
    assert (s.camera.width, s.camera.height, s.camera.fps, s.camera.mirror) == (640, 360, 30, True)
    assert s.output.record == str(tmp_path / "take1.mp4")
    page.cam_enabled.setChecked(False)
    assert load_settings(ui_home.settings_path).camera.enabled is False


def test_a_recording_path_in_a_missing_folder_is_refused(ui_app, ui_home, tmp_path):
    page = ui_app().window.pages["devices"]
    page.record.setChecked(True)
    page.record_path.setText(str(tmp_path / "nowhere" / "x.mp4"))
    page.record_path.editingFinished.emit()
    assert "does not exist" in page.record_msg.text()
    assert load_settings(ui_home.settings_path).output.record is None


def test_audio_file_option_replaces_the_microphone(ui_app, speech_wav, tmp_path):
    app = ui_app()
    page = app.window.pages["devices"].mic_card
    page.use_file.setChecked(True)
    page.audio_path.setText(str(tmp_path / "missing.wav"))
    page.audio_path.editingFinished.emit()
    assert "No file at" in page.file_msg.text() and app.controller.audio_file is None
    page.audio_path.setText(str(speech_wav))
    page.audio_path.editingFinished.emit()
    assert app.controller.build_options().audio_file == speech_wav
    assert not page.mic.isEnabled()


def test_level_meter_follows_a_real_microphone(ui_app, qtbot, mic_feeder):
    """Real PulseAudio virtual mic -> PortAudio -> MicSource on the meter's thread -> the bar."""
    import numpy as np
    devices = ui_app().window.pages["devices"]
    devices.refresh_devices()
    page = devices.mic_card
    page.listen_btn.setChecked(True)
    qtbot.waitUntil(lambda: page.mic_msg.text().startswith("Listening"), timeout=10000)
    t = np.arange(16000 * 3) / 16000
    mic_feeder.say((0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32))
    qtbot.waitUntil(lambda: page.level.db > -20, timeout=10000)
    assert page.level.fraction() > 0.5
    page.listen_btn.setChecked(False)
    page.meter.wait(5)
    assert not page.meter.running


# -- OBS -----------------------------------------------------------------------------------------
def test_obs_connection_settings_are_saved_privately(ui_app, ui_home):
    page = ui_app().window.pages["obs"]
    assert page.port.value() == 4455
    page.host.setText("studio.local")
    page.host.editingFinished.emit()
    page.password.setText("s3cret")
    page.password.editingFinished.emit()
    page.auto_sync.setChecked(False)
    page.offset.setValue(250)
    s = load_settings(ui_home.settings_path)
    assert (s.obs.host, s.obs.password, s.obs.sync_offset_auto, s.obs.sync_offset_ms) == \
        ("studio.local", "s3cret", False, 250)
    assert os.stat(ui_home.settings_path).st_mode & 0o077 == 0


def test_obs_test_button_reports_a_refused_connection(ui_app, qtbot):
    page = ui_app().window.pages["obs"]
    with socket.socket() as s:            # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    page.host.setText("127.0.0.1")
    page.port.setValue(port)
    page.test_btn.click()
    qtbot.waitUntil(lambda: page.test_btn.isEnabled(), timeout=10000)
    assert page.test_msg.objectName() == "error" and str(port) in page.test_msg.text()


def test_obs_test_and_pickers_against_real_obs(ui_app, qtbot, obs_server):
    page = ui_app().window.pages["obs"]
    page.host.setText("127.0.0.1")
    page.port.setValue(obs_server.port)
    page.password.setText(obs_server.password)
    page.test_btn.click()
    qtbot.waitUntil(lambda: page.test_btn.isEnabled(), timeout=15000)
    assert page.test_msg.text().startswith("Connected to OBS"), page.test_msg.text()
    page.fill_btn.click()
    qtbot.waitUntil(lambda: page.fill_btn.isEnabled(), timeout=15000)
    assert "Scene" in [page.scene.itemText(i) for i in range(page.scene.count())], page.fill_msg.text()


# -- window --------------------------------------------------------------------------------------
def test_without_a_system_tray_the_window_is_the_app_and_says_so(ui_app):
    app = ui_app()
    assert app.tray is None
    assert "No system tray" in app.window.tray_note.text()


def test_window_geometry_is_remembered(ui_app, ui_home, qtbot):
    app = ui_app()
    app.window.resize(960, 700)   # the offscreen screen is 800 px wide: restore clamps wider windows
    app.window.close()
    saved = load_settings(ui_home.settings_path)
    assert saved.ui.geometry
    again = ui_app(settings=saved)
    assert (again.window.width(), again.window.height()) == (960, 700)   # default is 1120 x 760


def test_theme_override_is_saved_and_applied(ui_app, ui_home):
    from PySide6.QtWidgets import QApplication
    app = ui_app()
    box = app.window.theme_box
    box.setCurrentIndex(box.findData("dark"))
    assert load_settings(ui_home.settings_path).ui.theme == "dark"
    assert QApplication.instance().palette().color(QPalette.Window).lightness() < 60
    box.setCurrentIndex(box.findData("light"))
    assert QApplication.instance().palette().color(QPalette.Window).lightness() > 200


from tests.fixtures_obs import obs_server, xvfb_display  # noqa: E402,F401
from tests.fixtures_pulse import mic_feeder, pulse  # noqa: E402,F401


def test_live_page_reports_dropped_audio(ui_app):
    from avatarcam.session import SessionStats
    live = ui_app().window.pages["live"]
    live.show_stats(SessionStats(dropped_frames=3, repeated_frames=4, frames_shown=100, dropped_audio_s=2.5))
    assert live.tiles["drops"].value.text() == "3 / 4"
    assert live.tiles["drops"].detail.text() == "2.5 s of audio dropped · 100 frames shown"


def test_obs_keyed_avatar_settings_are_saved(ui_app, ui_home):
    card = ui_app().window.pages["obs"].keyed_card
    card.keyed.setChecked(True)
    card.scene.setEditText("Gaming")
    card.scene.lineEdit().editingFinished.emit()
    s = load_settings(ui_home.settings_path)
    assert s.obs.keyed is True and s.obs.keyed_scene == "Gaming"
