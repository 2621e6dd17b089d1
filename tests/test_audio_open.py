"""open_stream: the rate fallback shared by the microphone and the delayed-mic output.

PulseAudio accepts every rate, so the real-device tests never reach the fallback; here `make` is a
plain function that refuses chosen rates the way PortAudio does (by raising).
"""
from __future__ import annotations

import pytest

from avatarcam.audio import AudioDevice, open_stream
from avatarcam.errors import DeviceError

HEADSET = AudioDevice(index=3, name="BT headset", channels=1, default_rate=48000.0, is_default=False)


def _refusing(*refused: int):
    opened: list[int] = []

    def make(rate: int) -> str:
        if rate in refused:
            raise RuntimeError(f"Invalid sample rate {rate}")
        opened.append(rate)
        return f"stream@{rate}"

    return make, opened


def test_accepted_rate_opens_once_at_that_rate():
    make, opened = _refusing()
    assert open_stream(make, HEADSET, 16000, "Microphone") == ("stream@16000", 16000)
    assert opened == [16000]


def test_refused_rate_falls_back_to_the_devices_own_rate():
    make, opened = _refusing(16000)
    assert open_stream(make, HEADSET, 16000, "Microphone") == ("stream@48000", 48000)
    assert opened == [48000]


def test_refused_rate_without_fallback_names_device_and_rate():
    make, _ = _refusing(16000)
    with pytest.raises(DeviceError, match=r"Microphone 'BT headset' cannot open at 16000 Hz"):
        open_stream(make, HEADSET, 16000, "Microphone", fallback=False)


def test_device_refusing_both_rates_points_to_the_device_list():
    make, _ = _refusing(16000, 48000)
    with pytest.raises(DeviceError, match=r"Audio output 'BT headset' could not be opened: .*avatarcam devices"):
        open_stream(make, HEADSET, 16000, "Audio output")


def test_device_error_from_make_is_passed_through_unchanged():
    def make(rate: int):
        raise DeviceError("PortAudio is missing")

    with pytest.raises(DeviceError, match="^PortAudio is missing$"):
        open_stream(make, HEADSET, 16000, "Microphone")
