"""Chat fine-tuning data: OpenAI's SFT JSONL, checked line by line and rendered for training.

One row per line: ``{"messages": [...], "tools": [...]}`` as OpenAI's chat fine-tuning takes
it and ``graft feedback export --format openai-sft`` writes it: system, user and assistant
messages, assistant ``tool_calls`` (``{"id", "type": "function", "function": {"name",
"arguments"}}``) answered by ``tool`` messages with the same ``tool_call_id``, and an
assistant ``weight`` of 0 to keep a turn as context without training on it. ``read_rows``
raises ``DataError`` naming the file and line of the first problem.

Rendering (``render``) follows what graft's local model sees when it serves the tuned model
(``graft.models.local``): SmolLM2's template knows only system, user and assistant turns, so
an assistant's tool calls become its JSON ``{"tool": name, "arguments": {...}}``, a tool
result a user turn starting ``Tool result:``, and turns of the same role are joined. The
offered tools are listed after the system prompt. The text then goes through the model's
own chat template (``apply_chat_template``), and only the assistant turns' tokens (with the
end-of-turn token) carry loss; the prompt's tokens are labelled ``-100``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

__all__ = [
    "IGNORE",
    "DataError",
    "Encoded",
    "Row",
    "Turn",
    "encode",
    "read_rows",
    "render",
    "row_key",
]

IGNORE: Final = -100
"""The label that carries no loss (PyTorch's ``cross_entropy`` ignore index)."""

_ROLES: Final = ("system", "user", "assistant", "tool")


class DataError(ValueError):
    """The fine-tuning data cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Row:
    """One conversation; ``line`` is its line number in the file (from 1)."""

    messages: tuple[dict[str, Any], ...]
    tools: tuple[dict[str, Any], ...]
    line: int


@dataclass(frozen=True)
class Turn:
    """A rendered turn; ``train`` marks an assistant turn whose tokens carry loss."""

    role: str
    content: str
    train: bool = False


@dataclass(frozen=True)
class Encoded:
    """A tokenized row: ``labels`` is ``input_ids`` with the prompt's tokens set to -100."""

    input_ids: list[int]
    labels: list[int]
    line: int

    @property
    def trained_tokens(self) -> int:
        """How many tokens carry loss."""
        return sum(1 for label in self.labels if label != IGNORE)


def row_key(row: Row) -> str:
    """The row as canonical JSON: what the held-out split hashes and duplicates compare."""
    return json.dumps(
        {"messages": row.messages, "tools": row.tools}, sort_keys=True, ensure_ascii=False
    )


# --- reading ----------------------------------------------------------------------------


def read_rows(path: Path) -> list[Row]:
    """Read and check an SFT JSONL file; blank lines are skipped and repeated rows kept once.

    Raises ``DataError`` naming the line for invalid JSON, a row that is not a conversation
    (unknown role, missing content, a tool call without a matching result, a row with no
    assistant turn to learn), and for a file with no rows.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from exc
    rows: list[Row] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            message = f"not JSON: {exc.msg} (column {exc.colno})"
            raise DataError(f"{path}, line {number}: {message}") from None
        try:
            row = _row(data, number)
        except ValueError as exc:
            raise DataError(f"{path}, line {number}: {exc}") from None
        key = row_key(row)
        if key not in seen:
            seen.add(key)
            rows.append(row)
    if not rows:
        raise DataError(f"{path}: no rows (one JSON object per line, each with 'messages')")
    return rows


def _row(data: Any, line: int) -> Row:
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise ValueError('expected an object with a "messages" list')
    tools = data.get("tools", [])
    if not isinstance(tools, list):
        raise ValueError('"tools" must be a list')
    names = [_tool_name(tool, i) for i, tool in enumerate(tools)]
    messages = [_message(m, i) for i, m in enumerate(data["messages"])]
    open_calls: dict[str, int] = {}
    for i, message in enumerate(messages):
        for call in message.get("tool_calls", []):
            name = call["name"]
            if names and name not in names:
                raise ValueError(f'message {i} calls {name!r}, which is not in "tools"')
            open_calls[call["id"]] = i
        if message["role"] == "tool":
            if message.get("tool_call_id") not in open_calls:
                raise ValueError(
                    f"message {i}: tool result for {message.get('tool_call_id')!r}, "
                    "which no earlier assistant message called"
                )
            del open_calls[message["tool_call_id"]]
    if open_calls:
        call_id, i = next(iter(open_calls.items()))
        raise ValueError(f"message {i}: tool call {call_id!r} has no tool message answering it")
    if not any(m["role"] == "assistant" and m.get("weight", 1) for m in messages):
        raise ValueError("no assistant message to learn (with weight 1)")
    return Row(tuple(messages), tuple(tools), line)


def _tool_name(tool: Any, index: int) -> str:
    function = tool.get("function") if isinstance(tool, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str) or not name:
        raise ValueError(f'tools[{index}]: expected {{"type": "function", "function": {{"name"}}}}')
    return name


def _message(message: Any, index: int) -> dict[str, Any]:
    where = f"message {index}"
    if not isinstance(message, dict):
        raise ValueError(f"{where}: expected an object with role and content")
    role = message.get("role")
    if role not in _ROLES:
        raise ValueError(f"{where}: unknown role {role!r} (use one of {', '.join(_ROLES)})")
    content = _content(message.get("content"), where)
    out: dict[str, Any] = {"role": role, "content": content}
    calls = message.get("tool_calls") or []
    if role == "assistant":
        if not isinstance(calls, list):
            raise ValueError(f"{where}: tool_calls must be a list")
        out["tool_calls"] = [
            _call(call, f"{where}, tool_calls[{i}]") for i, call in enumerate(calls)
        ]
        weight = message.get("weight", 1)
        if weight not in (0, 1) or isinstance(weight, bool):
            raise ValueError(f"{where}: weight must be 0 or 1, not {weight!r}")
        out["weight"] = weight
        if not out["tool_calls"] and not content:
            raise ValueError(f"{where}: assistant message with neither content nor tool_calls")
    elif calls:
        raise ValueError(f"{where}: only assistant messages have tool_calls")
    elif content is None:
        raise ValueError(f"{where}: {role} message without content")
    if role == "tool":
        if not isinstance(message.get("tool_call_id"), str):
            raise ValueError(f"{where}: tool message without tool_call_id")
        out["tool_call_id"] = message["tool_call_id"]
    return out


def _content(content: Any, where: str) -> str | None:
    """Text content; a list of ``{"type": "text", "text": ...}`` parts is joined."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if len(texts) == len(content) and all(isinstance(t, str) for t in texts):
            return "".join(t for t in texts if isinstance(t, str))
    raise ValueError(f"{where}: content must be text (images and audio cannot be trained here)")


def _call(call: Any, where: str) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(call.get("id"), str):
        raise ValueError(f'{where}: expected {{"id", "type": "function", "function": {{...}}}}')
    name, arguments = function.get("name"), function.get("arguments", "{}")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: function without a name")
    if isinstance(arguments, dict):
        arguments = json.dumps(arguments, ensure_ascii=False)
    if not isinstance(arguments, str):
        raise ValueError(f"{where}: arguments must be a JSON string")
    try:
        json.loads(arguments)
    except json.JSONDecodeError:
        raise ValueError(f"{where}: arguments are not valid JSON: {arguments[:80]!r}") from None
    return {"id": call["id"], "name": name, "arguments": arguments}


# --- rendering --------------------------------------------------------------------------


def render(row: Row) -> list[Turn]:
    """The row as system/user/assistant turns, the way graft's local model renders history."""
    system = [m["content"] for m in row.messages if m["role"] == "system" and m["content"]]
    if row.tools:
        system.append("Tools:\n" + "\n".join(_tool_line(t) for t in row.tools))
    turns: list[Turn] = [Turn("system", "\n\n".join(system))] if system else []
    for message in row.messages:
        role, train = message["role"], False
        if role == "system":
            continue
        if role == "tool":
            role, content = "user", f"Tool result: {message['content'] or ''}"
        elif role == "assistant":
            parts = [message["content"]] if message["content"] else []
            parts += [_call_json(c["name"], c["arguments"]) for c in message["tool_calls"]]
            content, train = "\n".join(parts), bool(message["weight"])
        else:
            content = message["content"] or ""
        if turns and turns[-1].role == role:
            last = turns[-1]
            turns[-1] = Turn(role, f"{last.content}\n\n{content}", last.train or train)
        else:
            turns.append(Turn(role, content, train))
    return turns


def _tool_line(tool: dict[str, Any]) -> str:
    function = tool["function"]
    parameters = function.get("parameters") or {}
    names = list((parameters.get("properties") or {}) if isinstance(parameters, dict) else {})
    description = str(function.get("description") or "").strip().split("\n")[0]
    return f"- {function['name']}({', '.join(names)}): {description}"


def _call_json(name: str, arguments: str) -> str:
    return json.dumps({"tool": name, "arguments": json.loads(arguments)}, ensure_ascii=False)


class ChatTokenizer(Protocol):
    """What ``encode`` needs of a transformers tokenizer."""

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any: ...

    def __call__(self, text: str, **kwargs: Any) -> Any: ...


def encode(row: Row, tokenizer: ChatTokenizer, max_length: int) -> Encoded:
    """Tokenize ``row`` with the model's chat template; only trained turns carry labels.

    A turn's span runs from the end of the prompt that asks for it (the template with
    ``add_generation_prompt``) to the end of the turn, so the end-of-turn token is learnt and
    the assistant header is not. Raises ``ValueError`` when the row is longer than
    ``max_length`` tokens.
    """
    turns = render(row)
    chat = [{"role": t.role, "content": t.content} for t in turns]
    text = _template(tokenizer, chat, generation_prompt=False)
    spans: list[tuple[int, int]] = []
    for i, turn in enumerate(turns):
        if turn.train:
            start = len(_template(tokenizer, chat[:i], generation_prompt=True))
            end = len(_template(tokenizer, chat[: i + 1], generation_prompt=False))
            if not text.startswith(_template(tokenizer, chat[: i + 1], generation_prompt=False)):
                raise ValueError("the chat template does not render turns as a growing prefix")
            spans.append((start, end))
    tokens = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(tokens["input_ids"])
    if len(ids) > max_length:
        raise ValueError(f"{len(ids)} tokens, more than the maximum length {max_length}")
    labels = [
        token if any(start <= offset[0] < end for start, end in spans) else IGNORE
        for token, offset in zip(ids, tokens["offset_mapping"], strict=True)
    ]
    return Encoded(ids, labels, row.line)


def _template(
    tokenizer: ChatTokenizer, chat: Sequence[dict[str, str]], *, generation_prompt: bool
) -> str:
    if not chat:
        return ""
    text = tokenizer.apply_chat_template(
        list(chat), tokenize=False, add_generation_prompt=generation_prompt
    )
    return str(text)
