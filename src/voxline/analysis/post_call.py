"""Post-call analysis: the `call_analysis` object of a finished call.

`analyze_call` fills Retell's `CallAnalysis` wire dict (`call_summary`, `call_successful`,
`user_sentiment`, `in_voicemail`, `custom_analysis_data`) from the call's transcript and the agent's
`post_call_analysis_data`:

- With an LLM endpoint (`chat`): one non-streaming Chat Completions request (temperature 0) asks for a
  single JSON object with exactly the needed keys, each described with its type and allowed values;
  `system-presets` items replace the default instructions of their built-in field. The answer is
  parsed leniently (reasoning blocks and code fences stripped, the outermost `{...}` taken) and every
  value is validated by its type; invalid values are dropped with a note. A provider error or an
  unparseable answer is retried once; if it still fails, the local analysis is used instead.
- Locally (no endpoint, or the LLM failed), only what can honestly be computed: `user_sentiment` by
  VADER over the user's sentences, an extractive `call_summary` (the most informative sentences, in
  order, with who said them), `in_voicemail` false when the user spoke. `call_successful` and the
  custom data are left unset.

`AnalysisResult.notes` says, in words fit for the call's public log, what was done, what was left
unset and why, and what went wrong.
"""

import asyncio
import functools
import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from voxline.llm.openai_chat import ChatRequest, OpenAiChat, ProviderError

__all__ = ["DEFAULT_ANALYSIS_MODEL", "SENTIMENTS", "AnalysisResult", "analysis_model", "analyze_call"]

DEFAULT_ANALYSIS_MODEL = "gpt-4.1-mini"
"""Retell's default `post_call_analysis_model`."""

SENTIMENTS = ("Negative", "Positive", "Neutral", "Unknown")
NOBODY_SPOKE = "The call ended before anyone spoke."

_ATTEMPTS = 2
_SUMMARY_SENTENCES = 3
_SUMMARY_MIN_SCORE = 0.6
"""A summary sentence scores at least this fraction of the best sentence's score."""
_MAX_SENTENCE_CHARS = 300
_MAX_TRANSCRIPT_CHARS = 60_000
_MAX_TOOL_TEXT_CHARS = 600
_MAX_NOTE_VALUE_CHARS = 80
_POSITIVE_AT = 0.05
_NEGATIVE_AT = -0.05
_VOICEMAIL_REASON = "voicemail_reached"

_BUILTIN_KEYS = ("call_summary", "call_successful", "user_sentiment", "in_voicemail")
_CUSTOM_KEY = "custom_analysis_data"
_CUSTOM_TYPES = ("string", "enum", "boolean", "number")
_PRESET_TYPE = "system-presets"
_SPEAKERS = {"agent": "Agent", "user": "User", "transfer_target": "Transfer target"}


@dataclass(frozen=True)
class AnalysisResult:
    analysis: dict[str, Any]
    """The `CallAnalysis` wire dict: only the keys that were determined."""
    method: Literal["llm", "local"]
    notes: list[str]
    """Human-readable, for the call's public log: what was done, what was left unset and why, errors."""


def analysis_model(agent: Mapping[str, Any]) -> str:
    """The model to analyse the agent's calls with: its `post_call_analysis_model`, or Retell's default."""
    model = agent.get("post_call_analysis_model")
    return model if isinstance(model, str) and model.strip() else DEFAULT_ANALYSIS_MODEL


# -- what to determine ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Field:
    """One value to determine: a built-in field or a custom item of `post_call_analysis_data`."""

    name: str
    type: Literal["string", "enum", "boolean", "number"]
    description: str
    choices: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    required: bool = False
    conditional_prompt: str | None = None


_DEFAULT_DESCRIPTIONS = {
    "call_summary": (
        "A summary of the call in at most 3 sentences, in the third person: why the call happened, what the "
        "agent and the user did or agreed, and how the call ended."
    ),
    "call_successful": (
        "true if the call achieved its purpose: the user's request was handled or the agent completed its task "
        "(successful tool calls count as evidence), and no technical problem spoiled the call; false otherwise."
    ),
    "user_sentiment": 'The user\'s overall sentiment over the call. "Unknown" if the user said too little to tell.',
    "in_voicemail": (
        "true if the call reached a voicemail box or an answering machine instead of a live person; false otherwise."
    ),
}


@dataclass(frozen=True)
class _Plan:
    builtins: tuple[_Field, ...]
    custom: tuple[_Field, ...]
    notes: tuple[str, ...] = ()


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _builtin_fields(presets: Mapping[str, Mapping[str, Any]]) -> tuple[_Field, ...]:
    fields = []
    for name in _BUILTIN_KEYS:
        preset = presets.get(name, {})
        kind: Literal["string", "enum", "boolean"] = (
            "string" if name == "call_summary" else "enum" if name == "user_sentiment" else "boolean"
        )
        fields.append(
            _Field(
                name=name,
                type=kind,
                description=_text(preset.get("description")) or _DEFAULT_DESCRIPTIONS[name],
                choices=SENTIMENTS if name == "user_sentiment" else (),
                required=preset.get("required") is not False,
                conditional_prompt=_text(preset.get("conditional_prompt")),
            )
        )
    return tuple(fields)


def _custom_field(item: Mapping[str, Any]) -> _Field | str:
    """The field an item asks for, or why it is skipped."""
    name, kind = _text(item.get("name")), item.get("type")
    if name is None:
        return f"skipped a post_call_analysis_data item without a name (type {kind!r})"
    if kind not in _CUSTOM_TYPES:
        return f"skipped post_call_analysis_data item {name!r}: unknown type {kind!r}"
    choices = tuple(c for c in item.get("choices") or () if isinstance(c, str))
    if kind == "enum" and not choices:
        return f"skipped post_call_analysis_data item {name!r}: an enum without choices"
    return _Field(
        name=name,
        type=kind,
        description=_text(item.get("description")) or "",
        choices=choices if kind == "enum" else (),
        examples=tuple(e for e in item.get("examples") or () if isinstance(e, str)) if kind == "string" else (),
        required=item.get("required") is True,
        conditional_prompt=_text(item.get("conditional_prompt")),
    )


def _plan(agent: Mapping[str, Any]) -> _Plan:
    presets: dict[str, Mapping[str, Any]] = {}
    custom: dict[str, _Field] = {}
    notes: list[str] = []
    for item in agent.get("post_call_analysis_data") or ():
        if not isinstance(item, Mapping):
            notes.append("skipped a post_call_analysis_data item that is not an object")
        elif item.get("type") == _PRESET_TYPE:
            if item.get("name") in _BUILTIN_KEYS:
                presets[str(item["name"])] = item
            else:
                notes.append(f"skipped system preset {item.get('name')!r}: not a built-in analysis field")
        else:
            found = _custom_field(item)
            if isinstance(found, str):
                notes.append(found)
            elif found.name in custom:
                notes.append(f"skipped a second post_call_analysis_data item named {found.name!r}")
            else:
                custom[found.name] = found
    return _Plan(_builtin_fields(presets), tuple(custom.values()), tuple(notes))


# -- the transcript -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Utterance:
    role: str
    content: str


def _utterances(transcript: Sequence[Mapping[str, Any]]) -> list[_Utterance]:
    """What was said (agent, user, transfer target), in order; tool calls and other events left out."""
    said = []
    for item in transcript:
        role, content = item.get("role"), _text(item.get("content"))
        if role in _SPEAKERS and content is not None:
            said.append(_Utterance(str(role), content))
    return said


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _transcript_line(item: Mapping[str, Any]) -> str | None:
    role = item.get("role")
    if role in _SPEAKERS:
        content = _text(item.get("content"))
        return f"{_SPEAKERS[str(role)]}: {' '.join(content.split())}" if content else None
    if role == "tool_call_invocation":
        arguments = _clip(str(item.get("arguments") or ""), _MAX_TOOL_TEXT_CHARS)
        return f"[Tool call {item.get('name', '?')}({arguments})]"
    if role == "tool_call_result":
        successful = item.get("successful")
        outcome = "" if not isinstance(successful, bool) else " (succeeded)" if successful else " (failed)"
        return f"[Tool result{outcome}: {_clip(str(item.get('content') or ''), _MAX_TOOL_TEXT_CHARS)}]"
    if role == "dtmf":
        return f"[User pressed key {item.get('digit', '?')}]"
    if role == "node_transition":
        return f"[Agent moved from {item.get('former_node_name', '?')!r} to {item.get('new_node_name', '?')!r}]"
    return None


def _render_transcript(transcript: Sequence[Mapping[str, Any]]) -> tuple[str, bool]:
    """The transcript as dialogue lines; True if the middle was cut to fit the budget."""
    lines = [line for item in transcript if (line := _transcript_line(item))]
    text = "\n".join(lines)
    if len(text) <= _MAX_TRANSCRIPT_CHARS:
        return text, False
    half = _MAX_TRANSCRIPT_CHARS // 2
    omitted = len(text) - 2 * half
    return f"{text[:half]}\n[… {omitted} characters of the transcript omitted …]\n{text[-half:]}", True


# -- the prompt -----------------------------------------------------------------------------------
_INTRO = (
    "You analyse a finished call between a voice AI agent and a user. Read the call transcript in the next "
    "message and answer with one JSON object and nothing else: no code fences, no comments, no text before or "
    "after it. The object has exactly these keys:"
)


def _quoted(values: Sequence[str]) -> str:
    return ", ".join(json.dumps(v, ensure_ascii=False) for v in values)


def _type_phrase(spec: _Field) -> str:
    if spec.type == "enum":
        return f"string, exactly one of {_quoted(spec.choices)}"
    if spec.type == "boolean":
        return "boolean, true or false"
    if spec.type == "number":
        return "number, a JSON number such as 3 or 4.5"
    return "string"


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?", ":", ";")) else f"{text}."


def _key_line(spec: _Field, indent: str) -> str:
    nullable = "" if spec.required else "; or null"
    parts = [f"{indent}- {json.dumps(spec.name, ensure_ascii=False)} ({_type_phrase(spec)}{nullable}):"]
    if spec.description:
        parts.append(_sentence(spec.description))
    if spec.examples:
        parts.append(f"Examples: {_quoted(spec.examples)}.")
    if spec.conditional_prompt:
        parts.append(f"Fill it only if this holds: {_sentence(spec.conditional_prompt)} Otherwise use null.")
    elif spec.required:
        parts.append("Always give a value, your best judgement if the transcript is unclear.")
    else:
        parts.append("Use null if the transcript does not tell.")
    return " ".join(parts)


def _system_prompt(plan: _Plan) -> str:
    lines = [_INTRO, ""]
    lines += [_key_line(spec, "") for spec in plan.builtins]
    if plan.custom:
        lines.append(f'- "{_CUSTOM_KEY}" (object) with exactly these keys:')
        lines += [_key_line(spec, "  ") for spec in plan.custom]
    lines += [
        "",
        "Judge only from the transcript: lines starting with Agent are the voice AI agent, lines starting with "
        "User are the person it talked with, and bracketed lines are the agent's tool calls and their results.",
    ]
    return "\n".join(lines)


def _user_prompt(transcript_text: str, disconnection_reason: str | None) -> str:
    ending = f"The call ended with disconnection reason {disconnection_reason!r}.\n\n" if disconnection_reason else ""
    return f"{ending}Call transcript:\n{transcript_text or '(nobody spoke)'}"


# -- parsing and validating the answer ------------------------------------------------------------
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```[a-zA-Z]*")


def _parse_object(answer: str) -> dict[str, Any] | None:
    """The JSON object in a model's answer, tolerating fences, reasoning blocks and surrounding prose."""
    text = _FENCE.sub("", _THINK.sub("", answer))
    start, end = text.find("{"), text.rfind("}")
    if start < 0:
        return None
    for decode in (lambda: json.loads(text[start : end + 1]), lambda: json.JSONDecoder().raw_decode(text, start)[0]):
        # the outermost {...}; failing that (more braces after the object), the first complete object
        try:
            value = decode()
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


class _Invalid(ValueError):
    pass


_BOOLEAN_WORDS = {"true": True, "yes": True, "false": False, "no": False}
_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")
_INTEGER = re.compile(r"[-+]?\d+")


def _as_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOLEAN_WORDS:
        return _BOOLEAN_WORDS[value.strip().lower()]
    raise _Invalid("not a boolean")


def _as_number(value: Any) -> int | float:
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        text = value.strip()
        value = int(text) if _INTEGER.fullmatch(text) else float(text)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Invalid("not a number")
    return value


def _as_choice(value: Any, choices: Sequence[str]) -> str:
    if isinstance(value, str):
        if value in choices:
            return value
        folded = [c for c in choices if c.strip().casefold() == value.strip().casefold()]
        if len(folded) == 1:
            return folded[0]
    raise _Invalid(f"not one of {_quoted(choices)}")


def _as_string(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise _Invalid("not a non-empty string")


def _validate(spec: _Field, value: Any) -> Any:
    if spec.type == "boolean":
        return _as_boolean(value)
    if spec.type == "number":
        return _as_number(value)
    if spec.type == "enum":
        return _as_choice(value, spec.choices)
    return _as_string(value)


def _shown(value: Any) -> str:
    return _clip(json.dumps(value, ensure_ascii=False), _MAX_NOTE_VALUE_CHARS)


def _take(specs: Sequence[_Field], answer: Mapping[str, Any], label: str, notes: list[str]) -> dict[str, Any]:
    """The valid values of `specs` in `answer`; a note for each one missing, null or invalid."""
    taken: dict[str, Any] = {}
    for spec in specs:
        where = f"{label}{spec.name}"
        if spec.name not in answer:
            notes.append(f"{where} not determined: missing from the model's answer")
        elif answer[spec.name] is None:
            why = "required, but the model" if spec.required else "the model"
            notes.append(f"{where} not determined: {why} returned null")
        else:
            try:
                taken[spec.name] = _validate(spec, answer[spec.name])
            except _Invalid as exc:
                notes.append(f"{where} dropped: the model's value {_shown(answer[spec.name])} is {exc}")
    return taken


def _custom_answer(plan: _Plan, answer: Mapping[str, Any], notes: list[str]) -> Mapping[str, Any]:
    nested = answer.get(_CUSTOM_KEY)
    if isinstance(nested, Mapping):
        return nested
    flat = {s.name: answer[s.name] for s in plan.custom if s.name in answer and s.name not in _BUILTIN_KEYS}
    if flat:
        notes.append(f"the model put the custom keys at the top level instead of inside {_CUSTOM_KEY}")
    return flat


def _read_answer(plan: _Plan, answer: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    notes: list[str] = []
    analysis = _take(plan.builtins, answer, "", notes)
    if plan.custom:
        custom = _take(plan.custom, _custom_answer(plan, answer, notes), f"{_CUSTOM_KEY}.", notes)
        if custom:
            analysis[_CUSTOM_KEY] = custom
    return analysis, notes


# -- the LLM analysis -----------------------------------------------------------------------------
class _Unparseable(Exception):
    pass


def _expected_keys(plan: _Plan) -> frozenset[str]:
    custom = [_CUSTOM_KEY, *(s.name for s in plan.custom)] if plan.custom else []
    return frozenset([*_BUILTIN_KEYS, *custom])


async def _ask(chat: OpenAiChat, request: ChatRequest, expected: frozenset[str]) -> dict[str, Any]:
    answer = await chat.complete(request)
    parsed = _parse_object(answer)
    if parsed is None:
        shown = _clip(answer, _MAX_NOTE_VALUE_CHARS) if answer.strip() else "an empty answer"
        raise _Unparseable(f"the model's answer holds no JSON object: {shown!r}")
    if not expected.intersection(parsed):
        raise _Unparseable(f"the model's JSON has none of the expected keys: {_shown(parsed)}")
    return parsed


async def _ask_with_retry(
    chat: OpenAiChat, request: ChatRequest, expected: frozenset[str], notes: list[str]
) -> dict[str, Any] | str:
    """The parsed answer, or why there is none after the attempts."""
    why = ""
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            return await _ask(chat, request, expected)
        except ProviderError as exc:
            why = str(exc)
            if not exc.retryable:
                return f"{why}; not retried, as the provider refused the request"
        except _Unparseable as exc:
            why = str(exc)
        if attempt < _ATTEMPTS:
            notes.append(f"LLM analysis attempt {attempt} failed ({why}); retrying")
    return f"{why}; {_ATTEMPTS} attempts"


@dataclass(frozen=True)
class _LlmFailure:
    why: str
    notes: list[str]


async def _llm_analysis(
    chat: OpenAiChat, model: str, plan: _Plan, transcript: Sequence[Mapping[str, Any]], reason: str | None
) -> AnalysisResult | _LlmFailure:
    text, cut = _render_transcript(transcript)
    notes = []
    if cut:
        notes.append(f"the transcript was longer than {_MAX_TRANSCRIPT_CHARS} characters: its middle was left out")
    messages = [
        {"role": "system", "content": _system_prompt(plan)},
        {"role": "user", "content": _user_prompt(text, reason)},
    ]
    request = ChatRequest(model=model, messages=messages, temperature=0)
    answer = await _ask_with_retry(chat, request, _expected_keys(plan), notes)
    if isinstance(answer, str):
        return _LlmFailure(f"LLM analysis with model {model!r} failed ({answer})", notes)
    analysis, value_notes = _read_answer(plan, answer)
    return AnalysisResult(analysis, "llm", [f"analysis by LLM model {model!r}", *notes, *value_notes])


# -- the local analysis ---------------------------------------------------------------------------
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_STOP_WORDS = frozenset(
    """
    a about above after again against all am an and any are aren't as at be because been before being below between
    both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during each few for from
    further get got had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself him
    himself his how how's i i'd i'll i'm i've if in into is isn't it it's its itself just let's like me more most
    mustn't my myself no nor not now of off ok okay on once only or other ought our ours ourselves out over own
    please really right same shan't she she'd she'll she's should shouldn't so some such sure than thank thanks that
    that's the their theirs them themselves then there there's these they they'd they'll they're they've this those
    through to too um uh under until up us very was wasn't we we'd we'll we're we've well were weren't what what's
    when when's where where's which while who who's whom why why's will with won't would wouldn't yeah yes you you'd
    you'll you're you've your yours yourself yourselves hello hi hey bye goodbye oh great
    """.split()
)


@dataclass(frozen=True)
class _Sentence:
    order: int
    role: str
    text: str
    words: tuple[str, ...] = field(default_factory=tuple)


def _sentences(said: Sequence[_Utterance]) -> list[_Sentence]:
    found = []
    for utterance in said:
        for piece in _SENTENCE_END.split(utterance.content):
            text = " ".join(piece.split())
            if text:
                words = tuple(w for w in _WORD.findall(text.lower()) if w not in _STOP_WORDS)
                found.append(_Sentence(len(found), utterance.role, _clip(text, _MAX_SENTENCE_CHARS), words))
    return found


def _key_sentences(sentences: Sequence[_Sentence]) -> list[_Sentence]:
    """The few most informative sentences, in conversation order.

    A word's weight is its frequency in the conversation (stop words removed) relative to the most frequent
    word; a sentence scores the sum of its distinct words' weights over the square root of its length, so
    sentences dense in the call's recurring words win over both fillers and rambles."""
    frequency = Counter(w for s in sentences for w in s.words)
    if not frequency:
        return []
    top = max(frequency.values())

    def score(sentence: _Sentence) -> float:
        distinct = set(sentence.words)
        return sum(frequency[w] / top for w in distinct) / math.sqrt(len(sentence.words)) if distinct else 0.0

    ranked = sorted((s for s in sentences if len(set(s.words)) >= 2), key=lambda s: (-score(s), s.order))
    if not ranked:
        return []
    floor = _SUMMARY_MIN_SCORE * score(ranked[0])
    chosen = [s for s in ranked[:_SUMMARY_SENTENCES] if score(s) >= floor]
    return sorted(chosen, key=lambda s: s.order)


def _extractive_summary(said: Sequence[_Utterance]) -> str | None:
    sentences = _sentences(said)
    chosen = _key_sentences(sentences) or sentences[:_SUMMARY_SENTENCES]
    groups: list[tuple[str, list[str]]] = []
    for previous, sentence in zip([None, *chosen], chosen, strict=False):
        adjacent = previous is not None and previous.role == sentence.role and previous.order + 1 == sentence.order
        if adjacent:
            groups[-1][1].append(sentence.text)
        else:
            groups.append((sentence.role, [sentence.text]))
    parts = [f"the {_SPEAKERS[role].lower()} said: \u201c{' '.join(texts)}\u201d" for role, texts in groups]
    if not parts:
        return None
    summary = "; ".join(parts)
    return summary[0].upper() + summary[1:]


@functools.cache
def _vader() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def _sentiment(said: Sequence[_Utterance]) -> tuple[str, str]:
    """The user's sentiment and a note: the mean VADER compound score of the user's sentences."""
    texts = [s.text for s in _sentences([u for u in said if u.role == "user"])]
    if not texts:
        return "Unknown", "user_sentiment Unknown: the user did not speak"
    analyzer = _vader()
    mean = sum(analyzer.polarity_scores(t)["compound"] for t in texts) / len(texts)
    label = "Positive" if mean >= _POSITIVE_AT else "Negative" if mean <= _NEGATIVE_AT else "Neutral"
    return label, f"user_sentiment {label}: mean VADER compound score {mean:+.2f} over {len(texts)} user sentence(s)"


def _undetermined(plan: _Plan) -> str:
    names = ", ".join(s.name for s in plan.custom)
    return f"call_successful and custom data{f' ({names})' if names else ''} not determined"


def _local_analysis(
    plan: _Plan, transcript: Sequence[Mapping[str, Any]], reason: str | None, why: str
) -> AnalysisResult:
    said = _utterances(transcript)
    analysis: dict[str, Any] = {}
    if said:
        sentiment = (
            "sentiment by VADER" if any(u.role == "user" for u in said) else "sentiment Unknown (no user speech)"
        )
        notes = [f"{why}: {sentiment}, summary extractive, {_undetermined(plan)}"]
        if summary := _extractive_summary(said):
            analysis["call_summary"] = summary
    else:
        analysis["call_summary"] = NOBODY_SPOKE
        notes = [f"{why}: nobody spoke, so call_summary says so, user_sentiment is Unknown, {_undetermined(plan)}"]
    analysis["user_sentiment"], sentiment_note = _sentiment(said)
    if said:
        notes.append(sentiment_note)
    if reason == _VOICEMAIL_REASON:
        analysis["in_voicemail"] = True
        notes.append(f"in_voicemail true: the call ended with {_VOICEMAIL_REASON}")
    elif any(u.role == "user" for u in said):
        analysis["in_voicemail"] = False
        notes.append("in_voicemail false: the user spoke")
    else:
        notes.append("in_voicemail not determined: the user did not speak")
    return AnalysisResult(analysis, "local", notes)


# -- entry point ----------------------------------------------------------------------------------
async def analyze_call(
    transcript_with_tool_calls: list[dict[str, Any]],
    agent: Mapping[str, Any],
    *,
    chat: OpenAiChat | None,
    model: str,
    disconnection_reason: str | None = None,
) -> AnalysisResult:
    """Analyse a finished call (see the module docstring). Never raises for provider trouble.

    `transcript_with_tool_calls`: Retell transcript items (`transcript_with_tool_calls` when the call has
    it, else `transcript_object`); `agent`: the agent's wire dict (`post_call_analysis_data`); `model`: the
    model name to send (`analysis_model(agent)`)."""
    plan = _plan(agent)
    transcript = [item for item in transcript_with_tool_calls if isinstance(item, Mapping)]
    notes = list(plan.notes)
    if chat is None:
        why = "no LLM endpoint configured"
    elif not _utterances(transcript):
        why = "no LLM request made"
    else:
        outcome = await _llm_analysis(chat, model, plan, transcript, disconnection_reason)
        if isinstance(outcome, AnalysisResult):
            return AnalysisResult(outcome.analysis, outcome.method, [*notes, *outcome.notes])
        why = outcome.why
        notes += outcome.notes
    local = await asyncio.to_thread(_local_analysis, plan, transcript, disconnection_reason, why)
    return AnalysisResult(local.analysis, local.method, [*notes, *local.notes])
