"""Is this document in the critics' language? A warning, not a refusal.

The shipped critics were trained on English only. On a Chinese filing they keep nothing, and
before issue 11 that looked like "nothing relevant" instead of "wrong language". This module
guesses, cheaply, whether a text is English: first by the script of its letters (Unicode
character names: Han, Cyrillic, Arabic ... are not English whatever the words), then, for Latin
script, by function words: French, German, Spanish ... prose is full of "le", "und", "y" and has
almost none of "the", "and", "of"; text with neither kind (keyword lists, tables) counts as English.

Hand-written rather than a language-identification package: the question is only "English or
not", the script decides it for the case that produced empty output, and a model-based detector
(py3langid, lingua) would add a dependency and a model load to every run for a warning. It reads
a sample of at most `SAMPLE_CHARS` characters spread over the document, so a 100 MB input costs
the same as a short one.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["detect", "language_warning", "CRITIC_LANGUAGE"]

CRITIC_LANGUAGE = "English"
SAMPLE_CHARS = 60_000
MIN_LETTERS = 200  # below this, say nothing: too little text to judge
LATIN_SHARE = 0.5  # letters in Latin script, at least
FOREIGN_FUNCTION_SHARE = 0.08  # share of words that are other languages' function words

# The most frequent English words (function words); running English prose has 25-45% of them.
_FUNCTION = frozenset("""the of and to a in is that for it as was with be by on not he this are
or his from at which but have an they you were her she there their one all we can has been if
more when will would who so no its our these than into also may""".split())
# The same for French, German, Spanish, Italian, Portuguese and Dutch (none an English word):
# Latin-script text is called foreign only when these outnumber the English ones, so keyword
# lists, tables and code, which have neither, are not.
_FOREIGN = frozenset("""le la les des du et est une un que qui dans pour pas sur au avec ce il elle
sont der die das und ist nicht ein eine den von mit sich auf für im dem zu el los las del y que por
con para una es se lo di che è per della nel sono o os da do em não uma com het een van niet dat
zijn ook""".split())
_WORD = re.compile(r"[^\W\d_]+")
_ASCII_LETTERS = re.compile(r"[A-Za-z]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _sample(text: str) -> str:
    if len(text) <= SAMPLE_CHARS:
        return text
    pieces, size = 12, SAMPLE_CHARS // 12
    step = (len(text) - size) // (pieces - 1)
    return " ".join(text[i * step:i * step + size] for i in range(pieces))


def _script(ch: str) -> str:
    try:
        name = unicodedata.name(ch)
    except ValueError:
        return "other"
    first = name.split(" ", 1)[0]
    if first == "CJK":
        return "Han"
    return first.capitalize()


def detect(text: str) -> tuple[str, str] | None:
    """(script, verdict) where verdict is "english", "latin-other" or "non-latin"; None when
    the text has too few letters to tell."""
    sample = _sample(text)
    # ASCII letters are A-Z and a-z, all Latin: counted by one regex; only the other letters
    # are looked up one by one (a loop over every character cost ~3 ms per page)
    latin = len(_ASCII_LETTERS.findall(sample))
    counts: dict[str, int] = {"Latin": latin} if latin else {}
    letters = latin
    for ch in _NON_ASCII.findall(sample):
        if ch.isalpha():
            letters += 1
            s = _script(ch)
            counts[s] = counts.get(s, 0) + 1
    if letters < MIN_LETTERS:
        return None
    script = max(counts, key=lambda name: counts[name])
    if counts.get("Latin", 0) < LATIN_SHARE * letters:
        return script, "non-latin"
    words = [w.lower() for w in _WORD.findall(sample)]
    english = sum(w in _FUNCTION for w in words) / max(len(words), 1)
    foreign = sum(w in _FOREIGN for w in words) / max(len(words), 1)
    other = foreign >= FOREIGN_FUNCTION_SHARE and foreign > english
    return "Latin", ("latin-other" if other else "english")


def language_warning(text: str) -> dict[str, str] | None:
    """A `Stats.warnings` entry (code "language") when `text` does not look English."""
    found = detect(text)
    if found is None or found[1] == "english":
        return None
    script, verdict = found
    what = (f"mostly {script} script" if verdict == "non-latin"
            else "Latin-script text that does not read as English")
    return {"code": "language",
            "message": f"the document is {what}; the critics were trained on {CRITIC_LANGUAGE} "
                       "text, so what they keep may miss the answer"}
