"""The text the language model sees: one `<image>` per image, the task token, the question, then `<ans>`."""

from __future__ import annotations

IMAGE = "<image>"
ANSWER = "<ans>"
EOS = "<eos>"


def build_prompt(token: str, question: str, n_images: int) -> str:
    return IMAGE * n_images + f"{token} {question}".strip() + ANSWER


def training_text(token: str, question: str, n_images: int, answer: str) -> str:
    """Prompt + answer + end of sequence, as the corpus stores it."""
    return build_prompt(token, question, n_images) + answer + EOS


def prompt_task(prompt: str) -> str:
    """The task token a prompt built by build_prompt carries."""
    return prompt.replace(IMAGE, "").split(" ", 1)[0].split(ANSWER, 1)[0]


def prompt_question(prompt: str) -> str:
    """The question of a prompt built by build_prompt."""
    body = prompt.replace(IMAGE, "").split(ANSWER, 1)[0]
    return body.split(" ", 1)[1] if " " in body else ""
