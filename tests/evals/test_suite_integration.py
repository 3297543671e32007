"""``cites`` and ``sql_result`` checks end to end: suites through ``run_suite`` on a real Graft.

The knowledge suite runs on a real SQLite store whose knowledge index holds two real Markdown
documents, ingested with the offline e5 embedder that ``search_knowledge`` searches with; the
SQL suite reads a real SQLite file configured as a data source, through ``query_database``
and ``ask_database``. Only the chat model is scripted (``FunctionModel``): it calls the tools
and answers from what they return, as a model would, so every check reads what the real
turn produced: the cited passages, the tools' results.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from graft.config import Settings
from graft.embeddings import embedder_for
from graft.evals.checks import CheckResult
from graft.evals.runner import CaseResult, SuiteRun, run_suite
from graft.evals.suite import parse_suite
from graft.knowledge.index import KnowledgeIndex, Readers
from graft.knowledge.ingest import Ingestion
from graft.models.base import ModelRequest
from graft.runtime import Graft
from graft.store.sql import SQLStore
from graft.testing import FunctionModel, Response, call

LEAVE = "# Leave policy\n\n## Sick leave\n\nEmployees get ten days of paid sick leave a year.\n"
TRAVEL = "# Travel policy\n\n## Flights\n\nBook economy class for flights under six hours.\n"

KNOWLEDGE_SUITE = """
name: handbook
assistant: helpdesk
cases:
  - id: cites-the-leave-policy
    input: "How much sick leave do I get?"
    expect:
      - tool_called: search_knowledge
      - cites: leave.md
      - cites: LEAVE POLICY
  - id: cites-the-travel-policy
    input: "How much sick leave do I get?"
    expect:
      - cites: travel.md
"""

SQL_SUITE = """
name: shop
cases:
  - id: lists-products
    input: "List the products."
    expect:
      - sql_result: {contains: "rocket SKATES"}
      - sql_result: {matches: "Anvil.*42\\\\.5", tool: query_database}
  - id: lists-a-missing-product
    input: "List the products."
    expect:
      - sql_result: {contains: "Zeppelin"}
  - id: asks-a-price
    input: "What do rocket skates cost?"
    expect:
      - sql_result: {matches: "199", tool: ask_database}
  - id: asks-a-wrong-price
    input: "What do rocket skates cost?"
    expect:
      - sql_result: {contains: "42.5"}
"""

PRODUCTS = [("Anvil", 42.5), ("Giant magnet", 75.0), ("Rocket skates", 199.0)]
LIST_SQL = "SELECT name, price FROM products ORDER BY name"
PRICE_SQL = "SELECT name, price FROM products WHERE name = 'Rocket skates'"


def checks_of(result: CaseResult) -> list[tuple[str, bool]]:
    return [(check.label, check.passed) for check in result.checks]


def by_id(run: SuiteRun) -> dict[str, CaseResult]:
    return {result.case.id: result for result in run.results}


# --- cites ---------------------------------------------------------------------------------


def cite_sick_leave(request: ModelRequest) -> Response:
    """Searches the documents, then cites the passage that states the sick leave, by number."""
    last = request.messages[-1]
    if last.role != "tool":
        return [call("search_knowledge", query=last.content or "")]
    text = last.content or ""
    markers = list(re.finditer(r"^\[(\d+)\] ", text, re.MULTILINE))
    for marker, following in zip(markers, [*markers[1:], None], strict=True):
        passage = text[marker.start() : following.start() if following else len(text)]
        if "paid sick leave" in passage:
            return f"You get ten days of paid sick leave a year [{marker[1]}]."
    return "I found nothing about sick leave."


@pytest.fixture
async def handbook_graft(
    tmp_path: Path, settings_factory: Callable[..., Settings]
) -> AsyncIterator[tuple[Graft, Path]]:
    """A started Graft whose ``helpdesk`` assistant searches the collection ``hb``."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "leave.md").write_text(LEAVE)
    (docs / "travel.md").write_text(TRAVEL)
    model = FunctionModel(cite_sick_leave)
    settings = settings_factory(
        database_url=f"sqlite:///{tmp_path / 'graft.db'}",
        model=model.id,
        assistants={"helpdesk": {"collections": ["hb"]}},
    )
    async with Graft(settings, entry_points=False, models={model.id: model}) as graft:
        store = graft.store
        assert isinstance(store, SQLStore)
        index = KnowledgeIndex(store.engine)
        index.start()
        everyone = Readers("default", everyone=True)
        ingestion = Ingestion(index, embedder_for(settings), collection="hb", readers=everyone)
        await ingestion.run([str(docs)])
        yield graft, docs


async def test_cites_passes_for_the_cited_document_and_names_what_was_cited_otherwise(
    handbook_graft: tuple[Graft, Path],
) -> None:
    graft, docs = handbook_graft
    run = await run_suite(graft, parse_suite(KNOWLEDGE_SUITE))
    results = by_id(run)
    leave, travel = results["cites-the-leave-policy"], results["cites-the-travel-policy"]
    assert leave.error is None and travel.error is None
    # Both documents were retrieved; the answer cites only the leave policy.
    [search] = leave.transcript.tools
    assert search.name == "search_knowledge" and search.result is not None
    assert "Leave policy" in search.result and "Travel policy" in search.result
    [cited] = leave.transcript.cited
    assert cited["title"] == "Leave policy"
    assert Path(cited["source"]).name == "leave.md"
    assert leave.transcript.answer == f"You get ten days of paid sick leave a year [{cited['n']}]."
    assert checks_of(leave) == [
        ("tool_called search_knowledge", True),
        ("cites 'leave.md'", True),
        ("cites 'LEAVE POLICY'", True),
    ]
    assert leave.status == "pass"
    [failed] = travel.checks
    assert failed == CheckResult(
        "cites",
        "cites 'travel.md'",
        False,
        f"expected a citation of 'travel.md'; the answer cited [{cited['n']}] 'Leave policy' "
        f"({cited['source']})",
    )
    assert travel.status == "fail"
    assert run.passed == 1 and run.assistant == "helpdesk"
    assert str(docs / "leave.md") in str(cited["source"])


# --- sql_result ----------------------------------------------------------------------------


def query_the_shop(request: ModelRequest) -> Response:
    """Prices through ``ask_database`` (and drafts its SQL); lists through ``query_database``."""
    last = request.messages[-1]
    if not request.tools:  # ask_database drafting the SQL: no tools, tool_choice none
        assert request.tool_choice == "none"
        return f"```sql\n{PRICE_SQL}\n```"
    if last.role == "tool":
        return "Here is what the database says."
    question = last.content or ""
    if "cost" in question:
        return [call("ask_database", source="shop", question=question)]
    return [call("query_database", source="shop", sql=LIST_SQL)]


@pytest.fixture
async def shop_graft(
    tmp_path: Path, settings_factory: Callable[..., Settings]
) -> AsyncIterator[Graft]:
    """A started Graft with the SQLite file ``shop.db`` as the data source ``shop``."""
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, price REAL)")
        db.executemany("INSERT INTO products (name, price) VALUES (?, ?)", PRODUCTS)
    model = FunctionModel(query_the_shop)
    settings = settings_factory(
        model=model.id,
        sources={"shop": {"url": f"sqlite:///{path}", "description": "the shop's products"}},
    )
    async with Graft(settings, entry_points=False, models={model.id: model}) as graft:
        yield graft


async def test_sql_result_reads_the_real_query_results(shop_graft: Graft) -> None:
    run = await run_suite(shop_graft, parse_suite(SQL_SUITE))
    results = by_id(run)
    assert all(result.error is None for result in run.results)

    listed = results["lists-products"]
    [query] = listed.transcript.tools
    assert query.name == "query_database" and not query.is_error and query.result is not None
    assert all(name in query.result for name, _ in PRODUCTS)
    assert checks_of(listed) == [
        ("sql_result contains 'rocket SKATES'", True),
        ("sql_result matches /Anvil.*42\\.5/", True),
    ]

    missing = results["lists-a-missing-product"]
    [failed] = missing.checks
    [query] = missing.transcript.tools
    assert query.result is not None and len(query.result) <= 240  # quoted whole
    assert failed == CheckResult(
        "sql_result",
        "sql_result contains 'Zeppelin'",
        False,
        f"expected a SQL result that contains 'Zeppelin'; got query_database: {query.result!r}",
    )

    asked = results["asks-a-price"]
    [ask] = asked.transcript.tools
    assert ask.name == "ask_database" and not ask.is_error and ask.result is not None
    assert PRICE_SQL in ask.result and "199" in ask.result and "Anvil" not in ask.result
    assert checks_of(asked) == [("sql_result matches /199/", True)]

    wrong = results["asks-a-wrong-price"]
    [failed] = wrong.checks
    [ask] = wrong.transcript.tools
    assert ask.result is not None and "Rocket skates" in ask.result
    assert failed == CheckResult(
        "sql_result",
        "sql_result contains '42.5'",
        False,
        f"expected a SQL result that contains '42.5'; got ask_database: {ask.result!r}",
    )

    assert [r.status for r in run.results] == ["pass", "fail", "pass", "fail"]
