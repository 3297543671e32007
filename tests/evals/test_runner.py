"""run_suite (graft.evals.runner): cases through the real run_turn, on scripted models."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from graft.context import Principal
from graft.errors import ConfigError, ModelError
from graft.evals.checks import CheckResult
from graft.evals.compare import compare_runs, resolve_threshold
from graft.evals.runner import EVAL_PRINCIPAL, CaseResult, run_suite, select_cases
from graft.evals.suite import Suite, parse_suite
from graft.models.base import ModelRequest
from graft.runtime import Graft
from graft.testing import FakeModel, FunctionModel, Response, call

SUITE = """
name: arithmetic
cases:
  - id: multiplies
    tags: [calc]
    input: "What is 6 * 7? Use the calculator."
    expect:
      - tool_called: {name: calculator, arguments: {expression: {regex: "6 ?\\\\* ?7"}}}
      - contains: "42"
  - id: greets
    tags: [chat]
    input: "Say hello"
    expect:
      - contains: hello
      - not_tool_called: calculator
"""


def answer(request: ModelRequest) -> Response:
    """Calls the calculator for arithmetic, restates its result, and greets otherwise."""
    last = request.messages[-1]
    if last.role == "tool":
        found = re.search(r'"result": (\d+)', last.content or "")
        return f"The answer is {found[1] if found else '?'}."
    text = last.content or ""
    if "6 * 7" in text:
        return [call("calculator", expression="6 * 7")]
    return "hello there"


@pytest.fixture
async def graft(started: Callable[..., Any]) -> Graft:
    graft: Graft = await started(FunctionModel(answer, id="test:good"))
    return graft


async def test_every_case_runs_through_the_turn(graft: Graft) -> None:
    suite = parse_suite(SUITE)
    seen: list[str] = []
    run = await run_suite(graft, suite, on_result=lambda r: seen.append(r.case.id))
    assert [r.case.id for r in run.results] == ["multiplies", "greets"] == seen
    assert run.passed == 2 and run.pass_rate == 1.0
    assert run.model == "test:good" and run.assistant == "default"
    first = run.results[0].transcript
    assert [t.name for t in first.tools] == ["calculator"]
    assert first.tools[0].result is not None and "42" in first.tools[0].result
    assert first.answer == "The answer is 42."
    assert [c.passed for c in run.results[0].checks] == [True, True]
    assert first.latency_ms > 0


async def test_conversations_are_deleted_unless_kept(graft: Graft) -> None:
    suite = parse_suite(SUITE)
    run = await run_suite(graft, suite)
    assert await graft.store.list_conversations(EVAL_PRINCIPAL) == []
    kept = await run_suite(graft, suite, keep_conversations=True)
    stored = await graft.store.list_conversations(EVAL_PRINCIPAL)
    assert {c.id for c in stored} == {r.transcript.conversation_id for r in kept.results}
    assert run.results[0].transcript.conversation_id not in {c.id for c in stored}


async def test_a_failing_turn_is_a_failed_case_not_a_crash(started: Callable[..., Any]) -> None:
    model = FakeModel(ModelError("upstream exploded"), "hello", id="test:flaky")
    graft = await started(model)
    run = await run_suite(graft, parse_suite(SUITE))
    broken, fine = run.results
    assert broken.status == "error" and not broken.passed and broken.checks == []
    assert broken.error is not None and "upstream exploded" in broken.error
    assert fine.status == "pass"
    assert run.pass_rate == 0.5


async def test_a_model_override_runs_the_same_assistant_on_another_model(
    graft_factory: Callable[..., Graft],
) -> None:
    bad = FunctionModel(lambda request: "no idea", id="test:bad")
    graft = graft_factory(FunctionModel(answer, id="test:good"))
    graft._models[bad.id] = bad
    async with graft:
        base = await run_suite(graft, parse_suite(SUITE))
        cand = await run_suite(graft, parse_suite(SUITE), model="test:bad")
    assert len(bad.requests) == 2
    assert cand.model == "test:bad" and cand.pass_rate == 0.0
    comparison = compare_runs(base, cand, 0.05)
    assert comparison.regressed and comparison.broken == ["multiplies", "greets"]
    assert "REGRESSION: the pass rate dropped 100.0%" in comparison.summary()
    back = compare_runs(cand, base, 0.05)
    assert not back.regressed and back.fixed == ["multiplies", "greets"]


def test_the_threshold_comes_from_the_command_then_the_suite_then_the_settings() -> None:
    assert resolve_threshold(0.2, 0.1, 0.05) == 0.2
    assert resolve_threshold(None, 0.0, 0.05) == 0.0
    assert resolve_threshold(None, None, 0.3) == 0.3
    assert resolve_threshold(None, None, None) == 0.05


async def test_a_drop_within_the_threshold_passes(graft: Graft) -> None:
    suite = parse_suite(SUITE)
    full = await run_suite(graft, suite)
    half = await run_suite(graft, suite)
    half.results[1].checks[0] = CheckResult("contains", "contains hello", False, "made to fail")
    assert half.pass_rate == 0.5
    assert not compare_runs(full, half, 0.5).regressed  # exactly at the threshold
    assert compare_runs(full, half, 0.49).regressed


async def test_cases_run_as_their_user(started: Callable[..., Any]) -> None:
    principals: list[Principal] = []
    graft = await started(FunctionModel(lambda request: "hello", id="test:x"))
    await graft.store.create_user(tenant="default", name="alice", roles=["user"], groups=["sales"])
    original = graft.run_turn

    def spy(request: Any, principal: Principal) -> Any:
        principals.append(principal)
        return original(request, principal)

    graft.run_turn = spy  # type: ignore[method-assign]
    suite = parse_suite(
        "name: u\ncases:\n"
        "  - {id: a, user: alice, input: hi, expect: [{contains: hello}]}\n"
        "  - {id: b, input: hi, expect: [{contains: hello}]}\n"
    )
    run = await run_suite(graft, suite)
    assert run.passed == 2
    alice, default = principals
    assert alice.user_id == "alice" and alice.roles == {"user"} and alice.groups == {"sales"}
    assert default == EVAL_PRINCIPAL and "admin" in default.roles


async def test_concurrency_keeps_the_suite_order(graft: Graft) -> None:
    cases = "".join(
        f"  - {{id: c{i}, input: 'Say hello {i}', expect: [{{contains: hello}}]}}\n"
        for i in range(6)
    )
    suite = parse_suite("name: many\ncases:\n" + cases)
    finished: list[CaseResult] = []
    run = await run_suite(graft, suite, concurrency=3, on_result=finished.append)
    assert [r.case.id for r in run.results] == [f"c{i}" for i in range(6)]
    assert len(finished) == 6 and run.passed == 6


async def test_the_model_may_be_an_alias_of_the_registry(
    graft_factory: Callable[..., Graft],
) -> None:
    bad = FunctionModel(lambda request: "no idea", id="test:bad")
    graft = graft_factory(
        FunctionModel(answer, id="test:good"), models={"aliases": {"candidate": "test:bad"}}
    )
    graft._models[bad.id] = bad
    async with graft:
        run = await run_suite(graft, parse_suite(SUITE), model="candidate")
        with pytest.raises(ConfigError, match="'nope' is no model alias"):
            await run_suite(graft, parse_suite(SUITE), model="nope")
    assert run.model == "test:bad" and len(bad.requests) == 2


async def test_an_unknown_assistant_or_model_stops_the_run_before_any_case(graft: Graft) -> None:
    suite = parse_suite(SUITE)
    with pytest.raises(ConfigError, match="assistant 'nobody'"):
        await run_suite(graft, suite, assistant="nobody")
    with pytest.raises(ConfigError, match="model 'nowhere:x'.*no model provider 'nowhere'"):
        await run_suite(graft, suite, model="nowhere:x")


async def test_judge_checks_need_a_judge_at_the_start(graft: Graft) -> None:
    suite = parse_suite(
        "name: j\ncases:\n  - {id: a, input: hi, expect: [{contains: hello}, {judge: polite}]}\n"
    )
    with pytest.raises(ConfigError, match="has judge checks but no judge model"):
        await run_suite(graft, suite)
    with pytest.raises(ConfigError, match="judge model 'nowhere:judge'"):
        await run_suite(graft, suite, judge="nowhere:judge")


async def test_the_settings_name_the_judge(started: Callable[..., Any]) -> None:
    judge = FakeModel([call("verdict", passed=True, reason="polite")], id="test:judge")
    graft = await started(FunctionModel(lambda r: "hello", id="test:x"), evals={"judge": judge.id})
    graft._models[judge.id] = judge
    suite = parse_suite("name: j\ncases:\n  - {id: a, input: hi, expect: [{judge: polite}]}\n")
    run = await run_suite(graft, suite)
    assert run.passed == 1
    assert run.results[0].checks[0].message == "judge test:judge says pass: polite"


async def test_approvals_are_denied(started: Callable[..., Any]) -> None:
    from graft.hookspecs import hookimpl
    from graft.tools.function import tool

    sent: list[str] = []

    @tool
    def send_mail(to: str) -> str:
        """Send a mail."""
        sent.append(to)
        return "sent"

    class Mailer:
        @hookimpl
        def register_tools(self, register: Callable[..., None]) -> None:
            register(send_mail)

    # The calculator's output is untrusted: the mail that follows needs an approval.
    model = FakeModel(
        [call("calculator", expression="1+1")],
        [call("send_mail", to="x@example.com")],
        "done",
        id="test:mailer",
    )
    graft = await started(model, plugins=(Mailer(),))
    suite = parse_suite(
        "name: m\ncases:\n  - {id: a, input: 'mail x', expect: [{tool_called: send_mail}]}\n"
    )
    run = await run_suite(graft, suite)
    assert sent == [], "an eval run approves nothing"
    mail = run.results[0].transcript.tools[-1]
    assert mail.name == "send_mail" and mail.denied and mail.is_error
    assert "an eval run approves nothing" in (mail.result or "")
    assert run.results[0].passed


def test_select_cases() -> None:
    suite: Suite = parse_suite(SUITE)
    assert [c.id for c in select_cases(suite, tags=["chat"])] == ["greets"]
    assert [c.id for c in select_cases(suite, ids=["multiplies"])] == ["multiplies"]
    with pytest.raises(ConfigError, match="has no case 'nope'"):
        select_cases(suite, ids=["nope"])
    with pytest.raises(ConfigError, match="no case of suite 'arithmetic' has the tags zzz"):
        select_cases(suite, tags=["zzz"])


async def test_sentiment_checks_use_the_configured_analyzer(started: Callable[..., Any]) -> None:
    model = FunctionModel(lambda request: "Thank you, this is wonderful and great!", id="test:x")
    graft = await started(model)
    # `plugins=` of the fixture is the plugin objects: the setting is set on the settings.
    graft.settings.plugins["sentiment"] = {"backend": "lexicon"}
    suite = parse_suite(
        "name: s\ncases:\n"
        "  - {id: up, input: hi, expect: [{sentiment: positive}]}\n"
        "  - {id: down, input: hi, expect: [{sentiment: negative}]}\n"
    )
    run = await run_suite(graft, suite)
    up, down = run.results
    assert up.passed, up.checks[0].message
    assert not down.passed
    assert down.checks[0].message.startswith("expected a negative answer; it reads positive (")
