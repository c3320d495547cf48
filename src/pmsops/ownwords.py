"""pmsops's own words, so that masking a piece of a password never garbles what the tool says.

The settled redaction rule (#23 item 6, #24 item 1): pmsops's own text (sentences, hints, command and option names)
is never redacted; values inserted into it and text from outside are. A *fragment* of a password (where a parser cuts
a raw ``#``, ``/`` or ``@``) is often an ordinary word: ``Summer2024#pass`` has ``pass``, ``Autumn#connection`` has
``connection``, and masking those wherever they stand made ``***word``, ``encode-redis-***word`` and "***-py".

The words are read from the package's own source, so a new hint is covered the day it is written: every run of
letters (hyphen or underscore compounds and their parts included; a word with a digit is left out, since example
passwords in docstrings have digits). A fragment that is one of these words is not masked; the whole secret always is.
Read once, lazily: only a run that registered fragments and met one pays the ~0.15 s. A leaf module.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

_WORD = re.compile(r"[A-Za-z]+(?:[-_][A-Za-z]+)*(?![A-Za-z0-9])")
_JOINER = re.compile(r"[-_]")


@functools.cache
def own_words() -> frozenset[str]:
    """Every word of pmsops's source, and every run of parts of its compounds (``encode-redis-password`` gives
    ``redis-password``, ``redis``, ``password`` …), joined by ``-`` and by ``_``."""
    words: set[str] = set()
    for path in Path(__file__).parent.rglob("*.py"):
        for word in set(_WORD.findall(path.read_text(encoding="utf-8", errors="replace"))):
            parts = _JOINER.split(word)
            for i in range(len(parts)):
                for j in range(i + 1, len(parts) + 1):
                    words.update(("-".join(parts[i:j]), "_".join(parts[i:j])))
    return frozenset(words)


def is_own_word(text: str) -> bool:
    """Whether ``text`` is a word pmsops itself writes (case as written: ``Pass`` and ``pass`` are both checked)."""
    return text in own_words() or text.lower() in own_words()
