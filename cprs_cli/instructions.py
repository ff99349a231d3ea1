"""Control prompts: what the critic is asked to keep.

The presets are phrased like the official QwenLong-CPRS prompts. The same strings are used at
training time (`training/`) and by `--task`, so the critic sees at inference exactly the
instructions it learnt. `LEVEL_FOR_TASK` and `GRANULARITY_FOR_LEVEL` are the one table that ties a preset to the
evidence level of the training data it labels, and a level to the granularity that selects it.
"""

from __future__ import annotations

TASKS: dict[str, str] = {
    # sentence-level evidence: supporting facts for a question or claim
    "facts": (
        "You are an expert for information extraction. Based on the question, extract the "
        "sentences from the context that are needed to answer it or to verify the claim."
    ),
    # token-level: short answers and keywords
    "answers": (
        "You are an expert for information extraction. Based on the question, extract the "
        "keywords, names, numbers and short phrases from the context that answer it."
    ),
    # paragraph-level: whole relevant passages / turns
    "paragraphs": (
        "You are an expert for information extraction. Based on the question, extract the "
        "paragraphs from the context that are relevant to it."
    ),
    # needle-in-a-haystack style retrieval
    "needles": (
        "You are an expert for information extraction. Extract the special magic numbers, "
        "keys and values that the question asks about, together with the sentences that "
        "state them."
    ),
    # variable-assignment chains
    "chains": (
        "You are an expert for information extraction. Extract every assignment statement "
        "that belongs to the variable chain the question asks about."
    ),
}

DEFAULT_TASK = "facts"


# The evidence levels of the training data, and the granularity that selects each: token-level
# evidence (names, numbers, key-value pairs) is kept as words, the others as their own unit.
GRANULARITY_FOR_LEVEL = {"token": "word", "sentence": "sentence", "paragraph": "paragraph"}

# task ↔ evidence level, in one place: the level of the evidence each preset asks for, or None
# where the preset serves several levels and the example's own level stands (needles, chains)
LEVEL_FOR_TASK: dict[str, str | None] = {
    "facts": "sentence",
    "answers": "token",
    "paragraphs": "paragraph",
    "needles": None,
    "chains": None,
}
assert set(LEVEL_FOR_TASK) == set(TASKS) and set(GRANULARITY_FOR_LEVEL) >= set(filter(None, LEVEL_FOR_TASK.values()))

# Which preset labels each evidence level of the training data.
TASK_FOR_LEVEL = {level: task for task, level in LEVEL_FOR_TASK.items() if level is not None}


def level_for_task(task: str, default: str) -> str:
    """The evidence level a preset asks for; `default` (the example's own) where it has none."""
    return LEVEL_FOR_TASK.get(task) or default
