"""Split streamed LLM text into speakable pieces so TTS can start before the reply is complete."""

import re

_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*\s")
_CLAUSE_END = re.compile(r"[,;:\u2014\u2013]\s")


class TextSegmenter:
    """Accumulates text; `push` returns pieces ending at a sentence boundary (or a clause boundary
    once the piece is long enough to be worth speaking alone). Punctuation must be followed by
    whitespace, so "3.5" or "555,1234" are never split.

    The first piece of a reply ends at its first clause boundary when that comes before the end
    of the first sentence ("Sure," of "Sure, I can help you with that."): TTS starts on a short
    piece and the caller hears the agent sooner (bench/NOTES.md, issue 7); the rest follows while
    it plays."""

    def __init__(self, min_clause_chars: int = 24, first_clause_chars: int | None = 4) -> None:
        self._buf = ""
        self._min_clause_chars = min_clause_chars
        self._first_clause_chars = first_clause_chars
        self._cut_before = False

    def push(self, text: str) -> list[str]:
        self._buf += text
        pieces: list[str] = []
        while True:
            cut = self._find_cut()
            if cut is None:
                return pieces
            piece, self._buf = self._buf[:cut].strip(), self._buf[cut:]
            if piece:
                pieces.append(piece)
                self._cut_before = True

    def flush(self) -> list[str]:
        """The remainder, at content_complete."""
        piece, self._buf = self._buf.strip(), ""
        if piece:
            self._cut_before = True
        return [piece] if piece else []

    def _find_cut(self) -> int | None:
        sentence = _SENTENCE_END.search(self._buf)
        if not self._cut_before and self._first_clause_chars is not None:
            for clause in _CLAUSE_END.finditer(self._buf):
                if sentence and clause.end() > sentence.end():
                    break
                if clause.end() >= self._first_clause_chars:
                    return clause.end()
        if sentence:
            return sentence.end()
        for clause in _CLAUSE_END.finditer(self._buf):
            if clause.end() >= self._min_clause_chars:
                return clause.end()
        return None
