r"""The eval suite file: pydantic models of its cases and checks, and ``load_suite``.

A suite is YAML (or JSON): a name, optional defaults (assistant, model, judge, threshold) and
cases. A case is a conversation (``input``, one user message, or ``messages``) and the
checks its answer must pass (``expect``), each one a single-key mapping named for its kind::

    - tool_called: {name: calculator, arguments: {expression: {regex: "1234 ?\\* ?5678"}}}
    - contains: "7006652"

``graft eval from-feedback`` writes this format too, so it lives here, in one place, with
``extra="forbid"`` everywhere: a misspelt key is an error, never a check silently skipped.
Every error names the file, the case id and the field (``ConfigError``); regular
expressions and JSON schemas are checked when the suite loads, not when a case runs.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from graft.config import split_model_id
from graft.errors import ConfigError
from graft.messages import Message, ToolCall, new_id

__all__ = [
    "CHECK_KINDS",
    "Case",
    "Check",
    "Source",
    "Suite",
    "SuiteMessage",
    "load_suite",
    "parse_suite",
]

_NAME = r"^[a-z0-9_.-]{1,64}$"
_CASE_ID = r"^[A-Za-z0-9_.-]{1,64}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None
    return pattern


RegexText = Annotated[str, Field(min_length=1), AfterValidator(_compiles)]
"""A regular expression, compiled once when the suite loads to check it."""


class ToolCallSpec(_Strict):
    """A tool the answer called, and a subset of its arguments."""

    name: str = Field(min_length=1)
    arguments: dict[str, Any] | None = None
    """Keys that must be present with these values; a ``{regex: ...}`` value matches by regex."""

    @field_validator("arguments")
    @classmethod
    def _regexes_compile(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        def walk(item: Any) -> None:
            if isinstance(item, dict):
                if set(item) == {"regex"} and isinstance(item["regex"], str):
                    _compiles(item["regex"])
                for nested in item.values():
                    walk(nested)
            elif isinstance(item, list):
                for nested in item:
                    walk(nested)

        walk(value)
        return value


class TextSpec(_Strict):
    """Text the answer contains (or not): case-insensitive unless ``case_sensitive``."""

    text: str = Field(min_length=1)
    case_sensitive: bool = False


class PatternSpec(_Strict):
    """A regular expression searched in the answer."""

    pattern: RegexText
    ignore_case: bool = False


class SqlResultSpec(_Strict):
    """What the result of a SQL tool (``ask_database``, ``query_database``) holds."""

    contains: str | None = Field(default=None, min_length=1)
    matches: RegexText | None = None
    tool: str | None = None
    """Only results of this tool; by default those of ``ask_database`` and ``query_database``."""

    @model_validator(mode="after")
    def _says_something(self) -> SqlResultSpec:
        if self.contains is None and self.matches is None:
            raise ValueError("sql_result needs `contains` or `matches`")
        return self


Label = Literal["negative", "neutral", "positive"]


class SentimentSpec(_Strict):
    """The answer's sentiment label, and optionally the least confidence in it."""

    label: Label
    min_score: float = Field(default=0.0, ge=0, le=1)


class JudgeSpec(_Strict):
    """A model-graded check: criteria the judge model says the answer meets or not."""

    criteria: str = Field(min_length=1)
    model: str | None = None
    """A judge for this check only; by default the suite's, then ``[evals] judge``."""

    @field_validator("model")
    @classmethod
    def _model_id(cls, value: str | None) -> str | None:
        if value is not None:
            split_model_id(value)
        return value


class ToolCalled(_Strict):
    """The answer called this tool (``tool_called: NAME`` or a ``ToolCallSpec``)."""

    tool_called: ToolCallSpec

    @field_validator("tool_called", mode="before")
    @classmethod
    def _name_only(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class NotToolCalled(_Strict):
    """The answer did not call this tool."""

    not_tool_called: str = Field(min_length=1)


def _text(value: Any) -> Any:
    return {"text": value} if isinstance(value, str) else value


Text = Annotated[TextSpec, BeforeValidator(_text)]
"""A text, or ``{text, case_sensitive}``."""


class Contains(_Strict):
    """The answer contains the text."""

    contains: Text


class NotContains(_Strict):
    """The answer does not contain the text."""

    not_contains: Text


class Matches(_Strict):
    """A regular expression is found in the answer (``re.search``)."""

    matches: Annotated[
        PatternSpec, BeforeValidator(lambda v: {"pattern": v} if isinstance(v, str) else v)
    ]


class JsonSchema(_Strict):
    """The answer is JSON (alone, or in one fenced block) valid for the schema."""

    json_schema: dict[str, Any]

    @field_validator("json_schema")
    @classmethod
    def _schema_is_valid(cls, value: dict[str, Any]) -> dict[str, Any]:
        jsonschema = importlib.import_module("jsonschema")  # the `evals` extra
        try:
            jsonschema.Draft202012Validator.check_schema(value)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"not a valid JSON schema: {exc.message}") from None
        return value


class Cites(_Strict):
    """The answer cites a document with this title, source (file name or URL) or id."""

    cites: str = Field(min_length=1)


class SqlResult(_Strict):
    """A SQL tool's result holds the text or matches the pattern."""

    sql_result: SqlResultSpec


class SentimentIs(_Strict):
    """The answer's sentiment (the sentiment plugin's analyzer) has this label."""

    sentiment: SentimentSpec

    @field_validator("sentiment", mode="before")
    @classmethod
    def _label_only(cls, value: Any) -> Any:
        return {"label": value} if isinstance(value, str) else value


class LatencyMs(_Strict):
    """The whole turn took less than this many milliseconds."""

    latency_ms: float = Field(gt=0)


class Judge(_Strict):
    """The judge model says the answer meets the criteria."""

    judge: JudgeSpec

    @field_validator("judge", mode="before")
    @classmethod
    def _criteria_only(cls, value: Any) -> Any:
        return {"criteria": value} if isinstance(value, str) else value


_KINDS: dict[str, type[_Strict]] = {
    "tool_called": ToolCalled,
    "not_tool_called": NotToolCalled,
    "contains": Contains,
    "not_contains": NotContains,
    "matches": Matches,
    "json_schema": JsonSchema,
    "cites": Cites,
    "sql_result": SqlResult,
    "sentiment": SentimentIs,
    "latency_ms": LatencyMs,
    "judge": Judge,
}
CHECK_KINDS = tuple(_KINDS)
"""Every kind of check, in the order the docs list them."""


def _kind(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1:
        return str(next(iter(value)))
    if isinstance(value, BaseModel):
        return next(iter(type(value).model_fields))
    return None


Check = Annotated[
    Annotated[ToolCalled, Tag("tool_called")]
    | Annotated[NotToolCalled, Tag("not_tool_called")]
    | Annotated[Contains, Tag("contains")]
    | Annotated[NotContains, Tag("not_contains")]
    | Annotated[Matches, Tag("matches")]
    | Annotated[JsonSchema, Tag("json_schema")]
    | Annotated[Cites, Tag("cites")]
    | Annotated[SqlResult, Tag("sql_result")]
    | Annotated[SentimentIs, Tag("sentiment")]
    | Annotated[LatencyMs, Tag("latency_ms")]
    | Annotated[Judge, Tag("judge")],
    Discriminator(_kind),
]
"""One expectation: a single-key mapping whose key names its kind."""


class FunctionSpec(_Strict):
    """The ``function`` of an OpenAI-shaped tool call."""

    name: str = Field(min_length=1)
    arguments: str | dict[str, Any] = "{}"


class SuiteToolCall(_Strict):
    """A tool call of an earlier assistant message, OpenAI-shaped (``id``, ``function``)."""

    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionSpec

    def to_call(self) -> ToolCall:
        """The call as graft's ``ToolCall`` (arguments as JSON text)."""
        arguments = self.function.arguments
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        return ToolCall(self.id or new_id("call"), self.function.name, text)


class SuiteMessage(_Strict):
    """One message of a case's conversation."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[SuiteToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None

    def to_message(self) -> Message:
        """The message as graft's ``Message``."""
        return Message(
            self.role,
            self.content if self.content or not self.tool_calls else None,
            [call.to_call() for call in self.tool_calls],
            self.tool_call_id,
        )


class Source(_Strict):
    """Where a case came from (``graft eval from-feedback`` fills it)."""

    conversation_id: str | None = None
    turn_id: str | None = None
    rating: Literal["up", "down"] | None = None
    comment: str | None = None
    answer: str | None = None
    """The answer that was rated, for the reviewer."""


class Case(_Strict):
    """One conversation and what its answer must do."""

    id: str = Field(pattern=_CASE_ID)
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    user: str | None = Field(default=None, min_length=1)
    input: str | None = None
    messages: list[SuiteMessage] | None = None
    expect: list[Check] = Field(min_length=1)
    reference: str | None = None
    source: Source | None = None

    @field_validator("expect", mode="before")
    @classmethod
    def _known_kinds(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        for index, item in enumerate(value):
            if not isinstance(item, dict) or len(item) != 1:
                raise ValueError(
                    f"expect[{index}] must be a mapping with one key, the kind of check "
                    f"({', '.join(CHECK_KINDS)}); got {item!r}"
                )
            kind = next(iter(item))
            if kind not in _KINDS:
                raise ValueError(
                    f"expect[{index}]: unknown check {kind!r} (known: {', '.join(CHECK_KINDS)})"
                )
        return value

    @model_validator(mode="after")
    def _one_conversation(self) -> Case:
        if (self.input is None) == (self.messages is None):
            raise ValueError("give either `input` (one user message) or `messages`, not both")
        if self.input is not None and not self.input.strip():
            raise ValueError("`input` is empty")
        if self.messages is not None and (not self.messages or self.messages[-1].role != "user"):
            raise ValueError("`messages` must end with the user's message")
        return self

    def conversation(self) -> list[Message]:
        """The messages the turn is asked to answer."""
        if self.messages is not None:
            return [m.to_message() for m in self.messages]
        return [Message("user", self.input)]

    def prompt(self) -> str:
        """The user's last message, for reports and the judge."""
        return self.input if self.input is not None else self.conversation()[-1].content or ""


class Suite(_Strict):
    """A named list of cases, with defaults for running them."""

    name: str = Field(pattern=_NAME)
    description: str = ""
    assistant: str | None = None
    model: str | None = None
    judge: str | None = None
    threshold: float | None = Field(default=None, ge=0, le=1)
    cases: list[Case] = Field(min_length=1)

    @field_validator("model", "judge")
    @classmethod
    def _model_id(cls, value: str | None) -> str | None:
        if value is not None:
            split_model_id(value)
        return value

    @field_validator("cases")
    @classmethod
    def _unique_ids(cls, cases: list[Case]) -> list[Case]:
        seen: set[str] = set()
        for case in cases:
            if case.id in seen:
                raise ValueError(f"duplicate case id {case.id!r}")
            seen.add(case.id)
        return cases

    def needs_judge(self) -> bool:
        """Whether some case has a ``judge`` check without its own model."""
        return any(
            isinstance(check, Judge) and check.judge.model is None
            for case in self.cases
            for check in case.expect
        )


def load_suite(path: Path | str) -> Suite:
    """Read and check the suite file at ``path`` (YAML, or JSON by its ``.json`` suffix).

    Raises:
        ConfigError: The file is missing or unreadable, is not valid YAML/JSON, or does not
            describe a suite; the message names the file, the case id and the field.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"suite file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"suite file {str(path)!r} cannot be read: {exc}") from None
    return parse_suite(text, name=str(path), json_only=path.suffix.lower() == ".json")


def parse_suite(text: str, *, name: str = "<suite>", json_only: bool = False) -> Suite:
    """The suite in ``text``; ``name`` is what errors call it (see ``load_suite``)."""
    data = _read_json(text, name) if json_only else _read_yaml(text, name)
    if not isinstance(data, dict):
        raise ConfigError(f"suite {name}: the top level must be a mapping with `name` and `cases`")
    try:
        return Suite.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(err, data) for err in exc.errors())
        raise ConfigError(f"suite {name}: {problems}") from None


def _read_json(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"suite {name} is not valid JSON: {exc}") from None


def _read_yaml(text: str, name: str) -> Any:
    try:
        yaml = importlib.import_module("yaml")  # the `evals` extra
    except ImportError:
        raise ConfigError(
            f'suite {name}: reading YAML needs PyYAML (pip install "graft[evals]"), or write JSON'
        ) from None
    try:
        return yaml.load(text, Loader=_unique_key_loader(yaml))  # noqa: S506 (a safe loader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"suite {name} is not valid YAML: {exc}") from None


def _unique_key_loader(yaml: Any) -> Any:
    """PyYAML's safe loader, refusing a key written twice in one mapping (YAML keeps the last)."""

    def mapping(loader: Any, node: Any, deep: bool = False) -> Any:
        keys = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in keys:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            keys.add(key)
        return loader.construct_mapping(node, deep)

    loader: Any = type("UniqueKeyLoader", (yaml.SafeLoader,), {})
    loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return loader


def _describe(error: Any, data: dict[str, Any]) -> str:
    """One validation error as ``case 'ID': expect[1].contains.text: message``."""
    loc = list(error["loc"])
    where = ""
    if len(loc) >= 2 and loc[0] == "cases" and isinstance(loc[1], int):
        cases = data.get("cases")
        raw = cases[loc[1]] if isinstance(cases, list) and loc[1] < len(cases) else None
        case_id = raw.get("id") if isinstance(raw, dict) else None
        where = f"case {case_id!r}" if case_id is not None else f"cases[{loc[1]}]"
        loc = loc[2:]
    # The discriminator's tag (the kind) repeats the field name: drop it.
    path = ""
    for index, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        elif not (index > 0 and isinstance(loc[index - 1], int) and part in _KINDS):
            path += f".{part}" if path else str(part)
    message = str(error["msg"]).removeprefix("Value error, ")
    if path and message.startswith(f"{path}["):  # the message names the item itself
        path = ""
    field = ": ".join(x for x in (where, path) if x)
    return f"{field}: {message}" if field else message
