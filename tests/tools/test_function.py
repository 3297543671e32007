from __future__ import annotations

import threading
from typing import Annotated, Literal

import pytest
from pydantic import Field

from graft.config import AssistantSettings, load_settings
from graft.context import Context, Principal
from graft.errors import ToolArgumentError, ToolNotFound
from graft.tools import FunctionToolset, tool


def make_ctx() -> Context:
    return Context(
        Principal("alice", frozenset({"staff"})), load_settings(), "default", AssistantSettings()
    )


@tool
def weather(city: Annotated[str, Field(max_length=40)], unit: Literal["c", "f"] = "c") -> str:
    """Get the weather for a city.

    Args:
        city: City name, e.g. 'Paris'.
        unit: Temperature unit.
    """
    return f"{city}: 20{unit}"


def test_schema_comes_from_signature_and_docstring() -> None:
    definition = weather.definition
    assert definition.name == "weather"
    assert definition.description == "Get the weather for a city."
    params = definition.parameters
    assert params["required"] == ["city"]
    assert params["properties"]["city"]["maxLength"] == 40
    assert params["properties"]["city"]["description"] == "City name, e.g. 'Paris'."
    assert params["properties"]["unit"]["enum"] == ["c", "f"]
    assert params["additionalProperties"] is False


async def test_call_validates_and_runs_sync_functions_off_the_loop() -> None:
    seen: list[str] = []

    @tool
    def where() -> str:
        """Report the thread."""
        seen.append(threading.current_thread().name)
        return "ok"

    assert await where.call({}, make_ctx()) == "ok"
    assert seen and seen[0] != threading.main_thread().name


async def test_invalid_arguments_raise_a_message_the_model_can_use() -> None:
    with pytest.raises(ToolArgumentError) as info:
        await weather.call({"city": "x" * 50, "unit": "k"}, make_ctx())
    message = info.value.message
    assert "city" in message and "unit" in message
    with pytest.raises(ToolArgumentError, match="Extra inputs"):
        await weather.call({"city": "Paris", "country": "FR"}, make_ctx())


async def test_context_is_injected_and_hidden_from_the_schema() -> None:
    @tool(name="whoami", timeout=3)
    async def who(ctx: Context, greeting: str = "hi") -> str:
        """Say who is asking."""
        return f"{greeting} {ctx.principal.user_id}"

    assert "ctx" not in who.definition.parameters["properties"]
    assert who.definition.timeout == 3
    assert await who.call({}, make_ctx()) == "hi alice"


def test_tools_need_a_description_and_a_valid_name() -> None:
    def undocumented(x: int) -> int:
        return x

    with pytest.raises(ValueError, match="docstring"):
        tool(undocumented)
    with pytest.raises(ValueError, match="must match"):
        tool(name="bad name!")(weather.func)


async def test_toolset_lists_and_dispatches() -> None:
    toolset = FunctionToolset([weather], name="demo")
    ctx = make_ctx()
    assert [d.name for d in await toolset.list_tools(ctx)] == ["weather"]
    assert await toolset.call_tool("weather", {"city": "Oslo"}, ctx) == "Oslo: 20c"
    with pytest.raises(ToolNotFound):
        await toolset.call_tool("nope", {}, ctx)
    with pytest.raises(ValueError, match="twice"):
        toolset.add(weather)
