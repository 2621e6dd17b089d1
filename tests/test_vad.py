"""The voice-activity gate: silero-vad's packaged model, speech through, other sounds as silence."""

import numpy as np
import pytest

from avatarcam.config import Settings, apply_overrides
from engine.card import load_card
from engine.codecs.logmel import LogMelEncoder
from engine.stream import AvatarStream
from engine.clips.sounds import make_sound
from engine.clips.voices import Voice, speak
from engine.codecs.vad import CHUNK, VoiceGate
from tests.fixtures_card import random_card  # noqa: F401


@pytest.fixture(scope="module")
def speech():
    return 0.5 * speak(["Hello moon, a happy baby. How are you today?"], Voice("flite", "rms"))[0].audio


def _gated(x: np.ndarray, block: int) -> tuple[np.ndarray, VoiceGate]:
    gate = VoiceGate(LogMelEncoder())
    return np.concatenate([gate.gate(x[i:i + block]) for i in range(0, x.size, block)]), gate


def test_speech_passes_nearly_whole(speech):
    y, gate = _gated(speech, 1280)
    assert y.shape == speech.shape
    assert (y ** 2).sum() > 0.8 * (speech ** 2).sum()
    assert gate.speech_chunks > 0.3 * gate.chunks


@pytest.mark.parametrize("kind", ["tone", "music", "keyboard", "white_noise"])
def test_non_speech_reaches_the_encoder_as_silence(kind):
    x = 0.3 * make_sound(kind, 3, 3.0)
    y, gate = _gated(x, 320)
    assert (y ** 2).sum() < 0.05 * (x ** 2).sum()


def test_any_block_size_gives_the_same_samples(speech):
    a, _ = _gated(speech, CHUNK)
    b, _ = _gated(speech, 777)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_reset_starts_a_new_stream_closed(speech):
    gate = VoiceGate(LogMelEncoder())
    gate.gate(speech)
    gate.reset()
    assert gate.chunks == 0 and gate.gate(np.zeros(CHUNK, np.float32)).max() == 0.0


def test_stream_with_vad_gates_what_its_encoder_hears(random_card, speech):
    card = load_card(random_card)
    stream = AvatarStream(card, vad=True)
    assert isinstance(stream.audio, VoiceGate) and stream.audio.dim == card.model.audio_dim
    stream.start(np.zeros((card.height, card.width, 3), np.uint8))
    frames = stream.push_audio(speech) + stream.flush()
    assert len(frames) == speech.size * 25 // 16000
    assert stream.audio.speech_chunks > 0
    assert not isinstance(AvatarStream(card).audio, VoiceGate)


def test_vad_setting_defaults_off_and_reaches_the_settings():
    assert Settings().audio.vad is False
    assert apply_overrides(Settings(), {"audio.vad": "true"}).audio.vad is True
