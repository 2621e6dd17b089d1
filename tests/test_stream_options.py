"""One settings file, one stream: `avatarcam run` and the tray app build the same stream options."""
import numpy as np

from avatarcam.avatars import AvatarLibrary
from avatarcam.cli import _settings, build_parser, run_options
from avatarcam.config import Settings, load_settings, save_settings
from avatarcam.stream_options import stream_options
from tests.fixtures_card import random_card  # noqa: F401  (fixture)
from tests.fixtures_qt import ui_home  # noqa: F401  (fixture)


def settings_file(ui_home, random_card, **anchors):
    lib = AvatarLibrary()
    lib.new_cartoon(seed=1, name="Ada")
    lib.new_cartoon(seed=2, name="Bo")
    lib.set_model("Bo", str(random_card))           # Bo is pinned to the test card
    s = Settings()
    s.avatar.current = "Bo"
    s.engine.device = "auto"
    s.anchors.temporal_frames = 3
    for key, value in anchors.items():
        setattr(s.anchors, key, value)
    save_settings(s, ui_home.settings_path)
    return ui_home.settings_path


def cli_options(path, *flags):
    args = build_parser().parse_args(["--settings", str(path), "run", *flags])
    return run_options(args, _settings(args))


def tray_options(path):
    from ui.controller import AppController
    return AppController(settings_path=path).build_options()


def stream_part(options) -> tuple:
    return options.model, options.device, options.stream_overrides, options.avatar_name


def test_the_cli_and_the_tray_app_build_the_same_stream_from_one_settings_file(ui_home, random_card, qtbot):
    path = settings_file(ui_home, random_card, preset="expressive")
    cli, tray = cli_options(path), tray_options(path)
    assert stream_part(cli) == stream_part(tray)
    assert np.array_equal(cli.avatar_image, tray.avatar_image)
    assert cli.avatar_identity == tray.avatar_identity and cli.avatar_identity.seed == 2   # Bo's rig
    assert cli.model == str(random_card) and cli.avatar_name == "Bo"     # the current avatar's pinned model
    assert cli.device == "cpu"                                            # auto, on a machine without a GPU
    assert cli.stream_overrides["block_frames"] == 1                      # expressive: half the card's B=2
    assert cli.stream_overrides["temporal_frames"] == 3


def test_custom_block_window_passes_are_settings_fields_both_front_ends_read(ui_home, random_card, qtbot):
    path = settings_file(ui_home, random_card, preset="custom", block_frames=1, window=2, passes=2)
    assert load_settings(path).extras == {}
    cli, tray = cli_options(path), tray_options(path)
    assert stream_part(cli) == stream_part(tray)
    assert (cli.stream_overrides["block_frames"], cli.stream_overrides["passes"]) == (1, 2)
    assert cli.stream_overrides["timesteps"] == (1000.0, 200.0)


def test_flags_win_over_the_settings(ui_home, random_card):
    path = settings_file(ui_home, random_card, preset="stable")
    cli = cli_options(path, "--avatar", "Ada", "--passes", "3", "--device", "cpu")
    assert cli.avatar_name == "Ada" and cli.model == "toon"               # Ada pins nothing: engine.model
    assert cli.stream_overrides["passes"] == 3


def test_a_custom_field_left_empty_takes_the_cards_value(ui_home, random_card):
    s = Settings()
    s.engine.model = str(random_card)
    s.anchors.preset = "custom"
    s.anchors.passes = 2
    options = stream_options(s, library=AvatarLibrary())
    assert options.stream_overrides["passes"] == 2
    assert "block_frames" not in options.stream_overrides and "timesteps" not in options.stream_overrides
