"""Chat messages and prompts inside records: the one message check every path uses (files, the library API, the
reward service), prompt and response fields to scoring inputs, record ids."""

from __future__ import annotations

from typing import Any

from flr.errors import InputError
from flr.records.files import Record

ROLES = ("system", "user", "assistant")


def conversation_text(prompt: str | list[dict]) -> str:
    """A prompt as plain text: a string as it is, a message list as ``role: content`` lines."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m['role']}: {m['content']}" for m in prompt)


def assistant_text(completion: str | list[dict]) -> str:
    """A TRL completion as text: a string as it is, or its assistant messages' contents joined."""
    if isinstance(completion, str):
        return completion
    return "".join(m["content"] for m in completion if m.get("role") == "assistant")


def message_problem(message: Any) -> tuple[str, str] | None:
    """What is wrong with one chat message, and the sub-field it concerns; None if it is well formed. The one
    check every path uses (files, the library API, the reward service)."""
    if not isinstance(message, dict) or not isinstance(message.get("content"), str):
        return "each message needs a string 'content'", ""
    if message.get("role") not in ROLES:
        return f"role {message.get('role')!r} is not system, user or assistant", ".role"
    return None


def validate_messages(messages: Any, record: Record, field: str) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise InputError(
            "expected a non-empty list of {role, content} messages", file=record.source, line=record.line, field=field
        )
    for i, m in enumerate(messages):
        problem = message_problem(m)
        if problem:
            raise InputError(problem[0], file=record.source, line=record.line, field=f"{field}[{i}]{problem[1]}")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def prompt_messages(value: Any, where: dict) -> list[dict]:
    """A prompt field (string, message list, or list of user turns) -> messages; ``where`` (file, line, field)
    locates errors."""
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        value = value[0]  # a list of user turns (MT-Bench style): later turns need earlier answers
    if not isinstance(value, str | list) or not value:
        raise InputError("expected a non-empty string or message list", **where)
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    record = Record(where.get("file", "input"), where.get("line", 0), {})
    return validate_messages(value, record, where.get("field", "prompt"))


def get_text(record: Record, field: str) -> str:
    value = record.data.get(field)
    if value is None:
        raise InputError("missing", file=record.source, line=record.line, field=field)
    if not isinstance(value, str):
        raise InputError(
            f"expected a string, got {type(value).__name__}", file=record.source, line=record.line, field=field
        )
    if not value.strip():
        raise InputError("empty", file=record.source, line=record.line, field=field)
    return value


def get_prompt(record: Record, field: str = "prompt") -> str | list[dict[str, str]]:
    value = record.data.get(field)
    if isinstance(value, list):
        return validate_messages(value, record, field)
    return get_text(record, field)


def to_scoring_input(record: Record, response_field: str = "response") -> dict:
    """``{prompt, response}``, or ``{messages}`` ending with the assistant's turn -> ``{prompt, response}``."""
    if "prompt" not in record.data and isinstance(record.data.get("messages"), list):
        messages = validate_messages(record.data["messages"], record, "messages")
        if messages[-1]["role"] != "assistant":
            raise InputError(
                "the last message must be the assistant's response",
                file=record.source,
                line=record.line,
                field="messages",
            )
        if not messages[-1]["content"].strip():
            raise InputError("empty response", file=record.source, line=record.line, field="messages")
        if len(messages) == 1:
            raise InputError(
                "no conversation before the assistant's response",
                file=record.source,
                line=record.line,
                field="messages",
            )
        return {"prompt": messages[:-1], "response": messages[-1]["content"]}
    value = record.data.get(response_field)
    if isinstance(value, list):  # conversational TRL completion: [{"role": "assistant", "content": ...}]
        messages = validate_messages(value, record, response_field)
        if messages[-1]["role"] != "assistant":
            raise InputError(
                "the last message must be the assistant's", file=record.source, line=record.line, field=response_field
            )
        record = Record(record.source, record.line, {**record.data, response_field: messages[-1]["content"]})
    return {"prompt": get_prompt(record), "response": get_text(record, response_field)}


def record_id(record: Record, index: int) -> str:
    """A record's id: its own ``id`` field, else its position among the records read (0-based). One rule for
    every job, so ids line up between generate, mine, eval and compare outputs."""
    value = record.data.get("id")
    return str(value) if value is not None else str(index)
