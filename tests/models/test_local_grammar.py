"""Which tools the local model is offered, its call grammar, and parsing its calls."""

from __future__ import annotations

import json

from graft.models.local_grammar import (
    MAX_CALLS,
    MAX_TOOLS,
    PREFILL,
    _build_grammar,
    parse_calls,
    rank_tools,
    relevance,
)
from graft.tools.base import ToolDef


def tool(name: str) -> ToolDef:
    return ToolDef(name, "d", {"type": "object", "properties": {"x": {"type": "integer"}}})


def test_relevance_counts_the_distinctive_words_of_the_name() -> None:
    area = tool("calculate_triangle_area")
    assert relevance(area, "Find the area of a triangle with a base of 10") == 1.0
    assert relevance(area, "How big are triangles?") == 0.5  # "triangle" by its stem
    assert relevance(tool("determine_body_mass_index"), "the area of a triangle") == 0.0
    assert relevance(tool("getStockPrice"), "the stock price of Apple") == 1.0  # camelCase
    assert relevance(tool("get_data"), "get the data") == 0.0  # generic words only


def test_rank_tools_forces_the_best_match_or_orders_by_relevance() -> None:
    triangle, circle = tool("triangle_properties.get"), tool("circle_properties.get")
    offered, sure = rank_tools([circle, triangle], "the properties of a triangle, sides 3, 4, 5")
    assert offered == [triangle] and sure  # circle matches "properties" only: less
    both = [tool("sum_of_multiples"), tool("product_of_primes")]
    offered, sure = rank_tools(both, "the sum of multiples of 3, and the product of primes")
    assert offered == both and sure  # a tie: the request may need each
    many = [tool(f"tool_{i}") for i in range(10)] + [tool("weather_forecast_daily")]
    offered, sure = rank_tools(many, "will it rain? what's the weather")
    assert offered[0].name == "weather_forecast_daily" and len(offered) == MAX_TOOLS and not sure
    offered, sure = rank_tools(many, "use tool_3 please")
    assert [t.name for t in offered] == ["tool_3"] and sure  # named


def test_the_grammar_allows_several_calls_or_the_answer() -> None:
    grammar = _build_grammar([tool("a"), tool("b")], "chat", keep_patterns=True)
    assert grammar is not None
    root = grammar.split("root ::= ", 1)[1]
    assert root.count("call-one") == MAX_CALLS
    assert root.count(json.dumps("\n" + PREFILL)) == MAX_CALLS - 1
    assert root.rstrip().endswith(json.dumps('chat"}'))
    required = _build_grammar([tool("a")], None, keep_patterns=True)
    assert required is not None and "chat" not in required


def test_parse_calls_reads_each_line_and_drops_repeats() -> None:
    tools = [tool("a"), tool("b")]
    decision = (
        'a", "arguments": {"x": 1}}\n'
        f'{PREFILL}b", "arguments": {{"x": 2}}}}\n'
        f'{PREFILL}a", "arguments": {{"x": 1}}}}'
    )
    calls = parse_calls(decision, tools)
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("a", {"x": 1}), ("b", {"x": 2})]
    assert parse_calls('chat"}', tools) == []
    cut = parse_calls(f'a", "arguments": {{"x": 1}}}}\n{PREFILL}b", "argu', tools)
    assert [c.name for c in cut] == ["a"]  # a call cut short by the token budget is dropped


def test_one_shared_word_ranks_a_tool_but_does_not_force_a_call() -> None:
    clock, calculator = tool("current_time"), tool("calculator")
    offered, sure = rank_tools([calculator, clock], "what is the time complexity of quicksort?")
    assert offered[0] == clock and not sure
    offered, sure = rank_tools([calculator, clock], "what's the current time in Tokyo?")
    assert offered == [clock] and sure
