"""Control prompts: what the critic is asked to keep.

The presets are phrased like the official QwenLong-CPRS prompts. The same strings are used at
training time (`cprs_cli/train`) and by `--task`, so the critic sees at inference exactly the
instructions it learnt.
"""

from __future__ import annotations

from .errors import UsageError

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

# Which preset matches each evidence level of the training data.
TASK_FOR_LEVEL = {"sentence": "facts", "token": "answers", "paragraph": "paragraphs"}


def resolve_instruction(instruction: str | None = None, task: str | None = None) -> str:
    """Free text wins; else the named preset; else the default preset."""
    if instruction and task:
        raise UsageError("give either --instruction or --task, not both")
    if instruction:
        return instruction.strip()
    name = task or DEFAULT_TASK
    try:
        return TASKS[name]
    except KeyError:
        raise UsageError(f"unknown task {name!r}; choose from {', '.join(TASKS)}") from None
