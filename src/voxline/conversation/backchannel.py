"""Backchannel: a short "mm-hmm" while the user holds the floor for a long time.

It is not a response: the user cannot interrupt it, it never enters the transcript (so the
LLM's history stays clean), and any real reply stops it at once.
"""

from collections.abc import Callable

from voxline.conversation.config import ConversationConfig
from voxline.conversation.output import Playback


class Backchanneler:
    def __init__(self, speak: Callable[[str], Playback]) -> None:
        """`speak(word)` starts a Playback for the word (the engine knows the providers)."""
        self._speak = speak
        self._playback: Playback | None = None
        self._said = 0
        self._last = 0.0

    def maybe_speak(self, config: ConversationConfig, now: float, user_turn_start: float | None) -> None:
        """Call on each tick while the user is speaking and the agent has nothing to say.
        Speaks after backchannel_after_s / backchannel_frequency of user turn (or since the last one)."""
        if (
            not config.enable_backchannel
            or config.backchannel_frequency <= 0
            or not config.backchannel_words
            or user_turn_start is None
            or self._playback is not None
        ):
            return
        if now - max(user_turn_start, self._last) < config.backchannel_after_s / config.backchannel_frequency:
            return
        word = config.backchannel_words[self._said % len(config.backchannel_words)]
        self._said += 1
        self._last = now
        self._playback = self._speak(word)

    def done(self, playback: Playback) -> None:
        if self._playback is playback:
            self._playback = None

    def stop(self) -> None:
        playback, self._playback = self._playback, None
        if playback is not None:
            playback.cancel()
