"""The OpenAI chat-completions request, as graft accepts it, and its conversion to a turn.

Validation happens here, once, with messages that name the offending field. Fields that
would redirect the upstream call (``api_base``, ``base_url``, ``api_key``...) are refused,
never followed: the upstream of an assistant is the operator's choice, not the caller's.
Other unknown fields are ignored, as OpenAI-compatible servers commonly do, so newer clients
keep working.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from graft.agent import ModelParams
from graft.errors import InvalidRequest
from graft.messages import Message, ToolCall
from graft.tools.base import ToolDef
from graft.turn import TurnRequest

__all__ = ["ChatCompletionRequest", "FORBIDDEN_FIELDS"]

FORBIDDEN_FIELDS = frozenset(
    {
        "api_base",
        "base_url",
        "api_key",
        "api_version",
        "api_type",
        "azure_endpoint",
        "custom_llm_provider",
        "extra_headers",
        "headers",
        "organization",
        "proxy",
        "proxies",
        "endpoint",
        "upstream",
    }
)
_NAME = r"^[A-Za-z0-9_-]{1,64}$"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ContentPart(_Lenient):
    """One part of a multi-part message content."""

    type: str
    text: str | None = None


class FunctionCallIn(_Lenient):
    """The function of a tool call in a client-sent assistant message."""

    name: str = Field(pattern=_NAME)
    arguments: str = Field(max_length=1_000_000)


class ToolCallIn(_Lenient):
    """A tool call in a client-sent assistant message."""

    id: str = Field(min_length=1, max_length=200)
    type: Literal["function"] = "function"
    function: FunctionCallIn


class ChatMessageIn(_Lenient):
    """A message as OpenAI clients send it."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=64)

    def to_message(self, index: int) -> Message:
        """Convert to graft's message type, flattening text parts."""
        content = self.content
        if isinstance(content, list):
            texts = []
            for part in content:
                if part.type != "text" or part.text is None:
                    raise InvalidRequest(
                        f"content parts of type {part.type!r} are not supported; send text",
                        param=f"messages.{index}.content",
                    )
                texts.append(part.text)
            content = "".join(texts)
        if self.role == "tool" and not self.tool_call_id:
            raise InvalidRequest(
                "a tool message needs tool_call_id", param=f"messages.{index}.tool_call_id"
            )
        role = "system" if self.role == "developer" else self.role
        calls = [
            ToolCall(c.id, c.function.name, c.function.arguments) for c in self.tool_calls or []
        ]
        return Message(role, content, calls, self.tool_call_id, self.name)


class FunctionDefIn(_Lenient):
    """A client-declared function tool."""

    name: str = Field(pattern=_NAME)
    description: str = Field(default="", max_length=10_000)
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ToolIn(_Lenient):
    """A client-declared tool."""

    type: Literal["function"]
    function: FunctionDefIn


class NamedFunction(_Lenient):
    """The function of a named ``tool_choice``."""

    name: str = Field(pattern=_NAME)


class NamedToolChoice(_Lenient):
    """``tool_choice`` that forces one function."""

    type: Literal["function"]
    function: NamedFunction


class StreamOptions(_Lenient):
    """``stream_options``."""

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions``. ``model`` names a graft assistant."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[ToolIn] | None = Field(default=None, max_length=128)
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    n: int | None = Field(default=None, ge=1, le=1, description="Only 1 is supported.")
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = Field(default=None, max_length=256)
    conversation_id: str | None = Field(
        default=None,
        max_length=100,
        description="graft extension: continue a stored conversation; send only new messages.",
    )

    @model_validator(mode="after")
    def _refuse_redirects(self) -> ChatCompletionRequest:
        forbidden = sorted(FORBIDDEN_FIELDS.intersection(self.model_extra or {}))
        if forbidden:
            raise ValueError(
                f"field {forbidden[0]!r} is not accepted: graft never redirects the upstream "
                "call; the operator configures each assistant's model"
            )
        if isinstance(self.stop, list) and len(self.stop) > 4:
            raise ValueError("stop accepts at most 4 sequences")
        return self

    def to_turn(self) -> TurnRequest:
        """The turn this request asks for."""
        messages = [m.to_message(i) for i, m in enumerate(self.messages)]
        client_tools = [
            ToolDef(t.function.name, t.function.description, t.function.parameters)
            for t in self.tools or []
        ]
        names = [t.name for t in client_tools]
        if len(set(names)) != len(names):
            raise InvalidRequest("tool names must be unique", param="tools")
        choice = self.tool_choice
        tool_choice = choice.function.name if isinstance(choice, NamedToolChoice) else choice
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        params = ModelParams(
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_completion_tokens or self.max_tokens,
            stop=stop,
            seed=self.seed,
            tool_choice=tool_choice or "auto",
        )
        return TurnRequest(
            assistant=self.model,
            messages=messages,
            conversation_id=self.conversation_id,
            client_tools=client_tools,
            params=params,
            stream=self.stream,
        )
