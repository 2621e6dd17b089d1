"""Every synthesiser family behind one call: a Voice says who speaks, `speak` returns utterances.

Why several families: a model that only ever heard espeak-ng learns espeak's spectra, not speech
(issue: other synthesisers and people lip-sync clearly worse). flite and festival are different
engines (diphone, cluster-unit, HTS) with their own voices, and espeak-ng's variants and foreign
language voices reading English add accents, whisper and croak. Some voices of each family are
held out of training so the evaluation hears speakers the model never did.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.clips import festival, flite
from engine.clips.speech import Utterance, VoiceSpec, synthesize

FAMILIES = ("espeak", "flite", "festival")

_ESPEAK_LANGS = ("en-us", "en", "en-gb-x-gbcwmd", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc",
                 "en-gb-x-gbclan", "de", "fr", "es", "it", "nl", "pl", "sv", "pt")
_ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
                    "klatt3", "klatt4", "Annie", "Andy", "belinda", "benjamin", "david", "edward", "john", "linda",
                    "max", "paul", "whisper", "whisperf", "croak", "grandma", "grandpa", "Storm", "shelby", "")
# speakers no training clip uses: the evaluation's "held-out voices" of each family
HELD_OUT = {
    "espeak": ("en-gb-x-rp+klatt4", "en-us+grandma", "en-029+shelby", "nl+m7"),
    "flite": ("rms",),
    "festival": ("ked_diphone",),
}


@dataclass(frozen=True)
class Voice:
    """One speaker: its family, the family's voice name, and prosody (rate in words/min, espeak's 0..100 pitch)."""

    family: str = "espeak"
    name: str = "en-us"
    rate: int = 165
    pitch: int = 50
    pitch_range: int = 50
    word_gap: int = 0

    @property
    def label(self) -> str:
        return f"{self.family}:{self.name}"


def family_voices(family: str, held_out: bool = False) -> tuple[str, ...]:
    """The voice names of a family used for training (or, held_out=True, kept for evaluation)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown synthesiser family {family!r}; known: {', '.join(FAMILIES)}")
    if held_out:
        return HELD_OUT[family]
    if family == "espeak":
        names = tuple(f"{v}+{x}" if x else v for v in _ESPEAK_LANGS for x in _ESPEAK_VARIANTS)
    else:
        names = flite.VOICES if family == "flite" else festival.VOICES
    return tuple(n for n in names if n not in HELD_OUT[family])


def random_voice(rng: np.random.Generator, family: str, held_out: bool = False) -> Voice:
    """A speaker of `family` with random prosody (same generator state -> same voice)."""
    names = family_voices(family, held_out)
    return Voice(family=family, name=names[int(rng.integers(len(names)))], rate=int(rng.integers(125, 215)),
                 pitch=int(rng.integers(25, 80)), pitch_range=int(rng.integers(30, 90)),
                 word_gap=int(rng.choice([0, 0, 0, 1, 2, 4])))


def espeak_spec(voice: Voice) -> VoiceSpec:
    lang, _, variant = voice.name.partition("+")
    return VoiceSpec(voice=lang, variant=variant, rate=voice.rate, pitch=voice.pitch,
                     pitch_range=voice.pitch_range, word_gap=voice.word_gap)


def speak(texts: list[str], voice: Voice, seed: int = 0) -> list[Utterance]:
    """Each text spoken by `voice`: 16 kHz float32 audio with (start second, espeak mnemonic) phonemes."""
    stretch = 165.0 / max(voice.rate, 1)     # flite/festival: slower rate -> longer durations
    if voice.family == "espeak":
        return synthesize(texts, [espeak_spec(voice)] * len(texts), seed=seed)
    if voice.family == "flite":
        return [flite.speak_flite(t, voice.name, stretch) for t in texts]
    if voice.family == "festival":
        return festival.speak_festival(texts, voice.name, stretch)
    raise ValueError(f"unknown synthesiser family {voice.family!r}; known: {', '.join(FAMILIES)}")
