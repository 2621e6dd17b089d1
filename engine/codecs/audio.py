"""A card's audio encoder: PCM in, one feature row per video frame out.

`logmel` (ours, no weights) or `wav2vec2` (the paper's), as the card's `audio` section says;
with `vad`, behind the voice-activity gate (`engine.codecs.vad`), so non-speech reaches the model
as silence.
"""
from __future__ import annotations

from engine.card import ModelCard
from engine.config import SAMPLE_RATE


def build_audio_encoder(card: ModelCard, fps: float, vad: bool = False):
    """The encoder the card's `audio.encoder` names (the card accepts only the kinds built here)."""
    encoder = _encoder(card, fps)
    if vad:
        from engine.codecs.vad import VoiceGate
        return VoiceGate(encoder)
    return encoder


def _encoder(card: ModelCard, fps: float):
    spec = card.audio
    if spec.encoder == "wav2vec2":
        from engine.codecs.wav2vec import Wav2VecFeatures
        # samples per frame must be a whole number: pass 25, not 25.0
        return Wav2VecFeatures(card.path(spec.path), fps=int(fps) if float(fps).is_integer() else fps, **spec.settings)
    from engine.codecs.logmel import LogMelEncoder
    return LogMelEncoder(sample_rate=SAMPLE_RATE, fps=fps, **spec.settings)
