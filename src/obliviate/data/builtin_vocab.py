"""Invented words and value pools of the built-in benchmark (:mod:`obliviate.data.builtin`).

Names are built from syllables drawn with a seeded ``random.Random`` (so they are identical across
runs and platforms); the value pools (jobs, genres, subjects, hobbies, book titles, years, award
forms) are the fixed lists the people's facts are drawn from.
"""

from __future__ import annotations

import random
from typing import Any

# --- invented words -------------------------------------------------------------------------

_ONSETS = (
    "b",
    "d",
    "f",
    "g",
    "h",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "z",
    "br",
    "dr",
    "gr",
    "kr",
    "st",
    "th",
    "sh",
    "tr",
)
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "io", "ou")
_CODAS = ("", "", "", "n", "r", "l", "s", "m")


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(
        rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables)
    ).capitalize()


def _join(stem: str, suffix: str) -> str:
    """Stem + suffix without a vowel clash ("Veami" + "ia" -> "Veamia")."""
    if suffix and stem[-1] in "aeiou" and suffix[0] in "aeiou":
        suffix = suffix[1:]
    return stem + suffix


def _unique(rng: random.Random, used: set[str], make: Any) -> str:
    """Draw ``make(rng)`` until the result is not in ``used`` (and record it)."""
    for _ in range(10_000):
        value = make(rng)
        if value not in used:
            used.add(value)
            return value
    raise RuntimeError("ran out of invented names; lower the requested sizes")


# --- value pools ----------------------------------------------------------------------------

_JOBS = (
    "baker",
    "carpenter",
    "nurse",
    "sailor",
    "librarian",
    "pharmacist",
    "architect",
    "farmer",
    "tailor",
    "surgeon",
    "schoolteacher",
    "watchmaker",
    "bookbinder",
    "glassblower",
    "accountant",
    "astronomer",
    "blacksmith",
    "cartographer",
    "chemist",
    "dentist",
    "electrician",
    "florist",
    "gardener",
    "jeweller",
    "locksmith",
    "mechanic",
    "potter",
    "printer",
    "veterinarian",
    "weaver",
    "beekeeper",
    "translator",
    "photographer",
    "painter",
    "musician",
    "engineer",
    "pilot",
    "lawyer",
    "judge",
    "brewer",
    "shepherd",
    "fisherman",
)
_GENRES = (
    "mystery",
    "science fiction",
    "fantasy",
    "historical fiction",
    "romance",
    "horror",
    "poetry",
    "travel stories",
    "biography",
    "children's stories",
    "crime fiction",
    "satire",
    "adventure",
    "philosophy",
    "nature essays",
    "drama",
)
_SUBJECTS = (
    "history",
    "mathematics",
    "medicine",
    "law",
    "botany",
    "music",
    "philosophy",
    "chemistry",
    "architecture",
    "economics",
    "linguistics",
    "astronomy",
    "geography",
    "painting",
    "theology",
    "engineering",
)
_HOBBIES = (
    "sailing",
    "chess",
    "gardening",
    "painting",
    "birdwatching",
    "hiking",
    "pottery",
    "fishing",
    "cooking",
    "cycling",
    "stargazing",
    "woodcarving",
    "swimming",
    "knitting",
    "rowing",
    "collecting old maps",
)
_TITLE_ADJ = (
    "Silent",
    "Golden",
    "Broken",
    "Hidden",
    "Distant",
    "Crimson",
    "Frozen",
    "Forgotten",
    "Burning",
    "Quiet",
    "Endless",
    "Last",
    "Wandering",
    "Silver",
    "Secret",
    "Hollow",
    "Bright",
    "Lonely",
    "Ancient",
    "Restless",
    "Gentle",
    "Iron",
    "Paper",
    "Velvet",
)
_TITLE_NOUN = (
    "River",
    "Garden",
    "Lantern",
    "Harbour",
    "Mirror",
    "Orchard",
    "Tower",
    "Voyage",
    "Winter",
    "Compass",
    "Island",
    "Letter",
    "Bridge",
    "Forest",
    "Clockmaker",
    "Lighthouse",
    "Feather",
    "Kingdom",
    "Shadow",
    "Meadow",
    "Storm",
    "Window",
    "Journey",
    "Song",
)
_TITLES = tuple(f"The {a} {n}" for a in _TITLE_ADJ for n in _TITLE_NOUN)
_YEARS = tuple(str(y) for y in range(1920, 2000))
_AWARD_FORMS = (
    "the {w} Prize",
    "the {w} Medal for Literature",
    "the {w} Award",
    "the Golden {w} Pen",
    "the {w} Book Prize",
)


def _article(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun
