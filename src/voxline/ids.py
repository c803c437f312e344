"""Identifiers in Retell's style: a type prefix and random hex (`call_a4441234567890777c4a4a123e6`)."""

import secrets


def new_id(prefix: str, hex_chars: int = 26) -> str:
    return f"{prefix}_{secrets.token_hex((hex_chars + 1) // 2)[:hex_chars]}"


def new_agent_id() -> str:
    return new_id("agent")


def new_llm_id() -> str:
    return new_id("llm")


def new_call_id() -> str:
    return new_id("call", 27)
