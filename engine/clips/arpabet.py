"""ARPAbet segment lists (flite, festival) -> the espeak-ng mnemonics the viseme table speaks.

Why translate instead of a second viseme table: one phoneme alphabet for every synthesiser keeps
one set of mouth shapes, so a voice family cannot get its own (inconsistent) idea of an "oo".
flite and festival both report segments as (end time, name); clips want (start time, name).
"""

from __future__ import annotations

_TO_ESPEAK = {
    "aa": "A:", "ae": "a", "ah": "V", "ao": "O:", "aw": "aU", "ax": "@", "axr": "3", "ay": "aI", "eh": "E",
    "er": "3:", "ey": "eI", "ih": "I", "ix": "I2", "iy": "i:", "ow": "oU", "oy": "OI", "uh": "U", "uw": "u:",
    "ch": "tS", "dh": "D", "hh": "h", "jh": "dZ", "ng": "N", "sh": "S", "th": "T", "zh": "Z", "y": "j",
    "dx": "t#", "el": "@L", "em": "m", "en": "n",
    "pau": "_", "h#": "_", "sil": "_", "brth": "_",
}


def to_espeak(name: str) -> str:
    """One ARPAbet segment name (any case, stress digits allowed) as an espeak-ng mnemonic."""
    key = name.strip().lower().rstrip("012")
    return _TO_ESPEAK.get(key, key)


def starts_from_ends(segments: list[tuple[float, str]]) -> list[tuple[float, str]]:
    """[(end second, ARPAbet)] -> [(start second, espeak mnemonic)]; zero-length segments dropped."""
    out: list[tuple[float, str]] = []
    start = 0.0
    for end, name in segments:
        if end > start:
            out.append((start, to_espeak(name)))
        start = max(start, end)
    return out
