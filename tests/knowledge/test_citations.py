"""Citations: [n] markers checked against what the turn retrieved, and automatic retrieval."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from graft.config import Settings
from graft.context import Principal
from graft.embeddings import embedder_for
from graft.events import Citations, Event, TextDelta, ToolResult, TurnDone
from graft.knowledge.citations import CitationGuard
from graft.knowledge.index import KnowledgeIndex, Readers
from graft.knowledge.ingest import Ingestion
from graft.messages import Message
from graft.runtime import Graft
from graft.store.sql import SQLStore
from graft.testing import FakeModel
from graft.turn import TurnRequest


def passages(*numbers: int) -> ToolResult:
    citations = [{"n": n, "title": f"doc {n}", "source": f"/docs/{n}.md"} for n in numbers]
    return ToolResult("c1", "search_knowledge", "...", data={"citations": citations})


def run(guard: CitationGuard, *events: Event) -> list[Event]:
    return [out for event in events for out in guard.guard(event)]


def text_of(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


@pytest.mark.parametrize(
    ("pieces", "shown"),
    [
        (["Ten days [1]."], "Ten days [1]."),
        (["Ten days [7]."], "Ten days."),
        (["Both [1, 9] and [2][3]."], "Both [1] and [2]."),
        (["Runs [1][2] kept."], "Runs [1][2] kept."),
        (["Split [", "1", "] here."], "Split [1] here."),
        (["Split [", "8", "] gone."], "Split gone."),
        (["Code items[1] and x[9] stay."], "Code items[1] and x[9] stay."),
        (["Ends with [2"], "Ends with [2"),  # never closed: shown as it was
    ],
)
def test_markers_stay_only_for_retrieved_passages(pieces: list[str], shown: str) -> None:
    guard = CitationGuard()
    events = run(guard, passages(1, 2), *(TextDelta(p) for p in pieces), TurnDone("stop"))
    assert text_of(events) == shown
    assert isinstance(events[-1], TurnDone)


def test_the_cited_passages_are_listed_at_the_end() -> None:
    guard = CitationGuard()
    events = run(guard, passages(1, 2, 3), TextDelta("A [3] and [1] and [5]."), TurnDone("stop"))
    [cited] = [e for e in events if isinstance(e, Citations)]
    assert cited.stage == "cited" and [c["n"] for c in cited.citations] == [1, 3]
    assert events.index(cited) == len(events) - 2  # just before TurnDone


async def test_always_retrieve_gives_the_model_passages_and_checks_its_citations(
    tmp_path: Path, settings_factory: Callable[..., Settings]
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "leave.md").write_text("# Leave\n\nSick leave: ten days a year, paid.\n")
    settings = settings_factory(
        database_url=f"sqlite:///{tmp_path / 'graft.db'}",
        model="test:fake",
        assistants={"hr": {"collections": ["hb"], "retrieval": "always"}},
    )
    model = FakeModel("You get ten days [1], as the policy says [4].")
    async with Graft(settings, entry_points=False, models={model.id: model}) as graft:
        store = graft.store
        assert isinstance(store, SQLStore)
        index = KnowledgeIndex(store.engine)
        index.start()
        everyone = Readers("default", everyone=True)
        await Ingestion(index, embedder_for(settings), collection="hb", readers=everyone).run(
            [str(docs)]
        )
        request = TurnRequest("hr", [Message("user", "How much sick leave do I get?")])
        events = [e async for e in graft.run_turn(request, Principal("ann", frozenset()))]
    retrieved = [e for e in events if isinstance(e, Citations) and e.stage == "retrieved"]
    cited = [e for e in events if isinstance(e, Citations) and e.stage == "cited"]
    assert retrieved and retrieved[0].citations[0]["n"] == 1
    assert text_of(events) == "You get ten days [1], as the policy says."
    assert [c["n"] for c in cited[0].citations] == [1]
    system = model.requests[0].messages[0].content or ""
    assert "Passages for this question" in system and "ten days a year" in system
    assert 'trust="untrusted"' in system


def test_graft_ask_lists_the_cited_sources(capsys: pytest.CaptureFixture[str]) -> None:
    from graft.cli import _record, _show

    cited = Citations(
        [
            {
                "n": 1,
                "title": "Leave",
                "section": "Sick leave",
                "page": 2,
                "link": "/v1/knowledge/documents/doc_1#chunk-4",
            }
        ],
        "cited",
    )
    result: dict[str, object] = {}
    _record(result, cited)
    _show(cited)
    assert result["citations"] == cited.citations
    out = capsys.readouterr().out
    assert "Sources:" in out
    assert "[1] Leave (Sick leave · 2) /v1/knowledge/documents/doc_1#chunk-4" in out
