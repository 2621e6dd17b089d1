"""A card's audio encoder: PCM in, one feature row per video frame out.

`logmel` (ours, no weights) or `wav2vec2` (the paper's), as the card's `audio` section says;
with `vad`, behind the voice-activity gate (`engine.codecs.vad`), so non-speech reaches the model
as silence.
"""
from __future__ import annotations

from engine.checkpoints import CheckpointError, ModelCard
from engine.config import SAMPLE_RATE


def build_audio_encoder(card: ModelCard, fps: float, vad: bool = False):
    encoder = _encoder(card, fps)
    if vad:
        from engine.codecs.vad import VoiceGate
        return VoiceGate(encoder)
    return encoder


def _encoder(card: ModelCard, fps: float):
    spec = dict(card.audio)
    kind = spec.pop("encoder", "logmel")
    if kind == "logmel":
        from engine.codecs.logmel import LogMelEncoder
        return LogMelEncoder(sample_rate=SAMPLE_RATE, fps=fps, **spec)
    if kind == "wav2vec2":
        from engine.codecs.wav2vec import Wav2VecFeatures
        if "path" not in spec:
            raise CheckpointError(f"model '{card.name}': the wav2vec2 audio encoder needs `path:` in the card")
        # samples per frame must be a whole number: pass 25, not 25.0
        return Wav2VecFeatures(card.path(spec.pop("path")), fps=int(fps) if float(fps).is_integer() else fps, **spec)
    raise CheckpointError(f"model '{card.name}': unknown audio encoder '{kind}' (known: logmel, wav2vec2)")
