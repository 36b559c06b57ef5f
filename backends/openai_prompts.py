"""Prompts of the length asked for, as the engine will count them.

Three methods, chosen by `-O prompts=` and what the engine accepts (`backends.openai_probe`):
  token ids   (`/v1/completions` with a list of ids, with `-O tokenizer=DIR`): seq_len ids drawn (seeded) from the
              tokenizer's vocabulary without its special tokens; the engine does not tokenize, so the length is
              exact on every engine that takes ids (vLLM, llama.cpp, `bench serve`).
  text        (with a tokenizer, where ids are not accepted -- `transformers serve`, the chat API): seeded words
              encoded once, then the text of the first k ids decoded and re-encoded *as the engine does* (with
              the tokenizer's special tokens; through its chat template for the chat API), k moved by the
              difference until the count is exactly seq_len (at most TRIM_ROUNDS rounds; it settles in one or two,
              since the ids of encoded text re-encode to themselves except at the cut; through a chat template,
              never fewer tokens than the template alone holds: `sent` then says what it is). Decoding random ids and
              re-encoding them, as before, grew a 64-token prompt to 68-81 tokens.
  words       (no tokenizer): seq_len words of `SYNTHETIC_WORDS` -- exact for `bench serve` (one word, one token),
              about 1-1.5 tokens per word for BPE tokenizers; the record holds what the engine reported.

Every prompt carries the length this client counted (`sent`, None for words), which the record keeps beside the
engine's `usage.prompt_tokens`. Warm-up and probe prompts come from other seeds than the timed ones, so no timed
prompt is already in an engine's prefix cache.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["SYNTHETIC_WORDS", "Prompt", "PromptMaker", "synthetic_prompt", "TRIM_ROUNDS"]

#: The synthetic corpus: common English words; a prompt is seq_len of them drawn with a seeded generator.
SYNTHETIC_WORDS = tuple(
    "the of and to in is was for on that with as by at from his it an were are which this be has or had first one "
    "their its new after who they have her she two been other when there all during into school time may years "
    "more most only over city some world would where later up such used many can state about national out known "
    "university united then made".split()
)
TRIM_ROUNDS = 24
#: Seed streams: timed prompts use the cell's seed, warm-up and probe prompts these offsets from it.
WARMUP_STREAM, PROBE_STREAM = 1 << 40, 1 << 41


@dataclass(frozen=True)
class Prompt:
    """What is sent (text or token ids) and the prompt tokens this client counted for it (None: not counted)."""

    payload: str | list[int]
    sent: int | None


def synthetic_prompt(length: int, seed: int, tokenizer: Any = None) -> str:
    """A seeded prompt of `length` words (exactly `length` tokens for `bench serve`'s word tokenizer)."""
    rng = random.Random(seed)
    return " ".join(rng.choice(SYNTHETIC_WORDS) for _ in range(length))


def _ids(encoded: Any) -> list[int]:
    """input_ids of what a tokenizer or apply_chat_template returned (a list, or a mapping holding one)."""
    ids = encoded["input_ids"] if hasattr(encoded, "keys") else encoded
    return list(ids[0] if ids and isinstance(ids[0], list) else ids)


class PromptMaker:
    """Seeded prompts of `length` tokens by one method (module docstring): `make(count, stream)`."""

    def __init__(self, length: int, seed: int, tokenizer: Any = None, method: str = "words", chat: bool = False):
        if method != "words" and tokenizer is None:
            raise ValueError(f"prompts by {method} need a tokenizer")
        self.length, self.seed, self.tokenizer, self.method, self.chat = length, seed, tokenizer, method, chat
        if tokenizer is not None:
            special = set(getattr(tokenizer, "all_special_ids", []) or [])
            self.vocabulary = [i for i in range(len(tokenizer)) if i not in special]

    @property
    def description(self) -> str:
        return {"ids": "token ids", "text": "text trimmed to length", "words": "synthetic words"}[self.method]

    def make(self, count: int, stream: int = 0) -> list[Prompt]:
        """`count` prompts from seed stream `stream` (0: timed; WARMUP_STREAM, PROBE_STREAM)."""
        base = (self.seed + stream) * 1_000_003
        return [self.one(base + i) for i in range(count)]

    def one(self, seed: int) -> Prompt:
        rng = random.Random(seed)
        if self.method == "ids":
            return Prompt([rng.choice(self.vocabulary) for _ in range(self.length)], self.length)
        words = " ".join(rng.choice(SYNTHETIC_WORDS) for _ in range(self.length + 16))
        if self.method == "words":
            return Prompt(" ".join(words.split()[: self.length]), None)
        return self._trimmed(words)

    def count(self, text: str) -> int:
        """Prompt tokens of `text` as the engine counts them: the tokenizer with its special tokens, through the
        chat template (with the generation prompt) for the chat API when the tokenizer has one."""
        tokenizer = self.tokenizer
        if self.chat and getattr(tokenizer, "chat_template", None):
            messages = [{"role": "user", "content": text}]
            return len(_ids(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)))
        return len(_ids(tokenizer(text)))

    def _trimmed(self, words: str) -> Prompt:
        """The first k ids of the encoded words, decoded, with k moved until the text counts exactly `length`."""
        ids = _ids(self.tokenizer(words, add_special_tokens=False))
        while len(ids) < 2 * self.length + 8:  # enough ids to cut from, whatever the template adds
            ids += ids
        decode: Callable[[int], str] = lambda k: self.tokenizer.decode(ids[:k], skip_special_tokens=True)
        overhead = self.count("")
        k = max(1, self.length - overhead)
        best: tuple[int, str, int] | None = None
        for _ in range(TRIM_ROUNDS):
            text = decode(k)
            got = self.count(text)
            if best is None or abs(got - self.length) < abs(best[2] - self.length):
                best = (k, text, got)
            if got == self.length:
                break
            k = max(1, k + (self.length - got if abs(self.length - got) > 0 else 1))
        return Prompt(best[1], best[2])
