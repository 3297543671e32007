"""The export and the eval cases on PostgreSQL: the same scenario, the same rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from tests.feedback.conftest import World
from tests.feedback.test_export import graft, jsonl, rated
from tests.feedback.test_from_feedback import check_suite, make_cases
from tests.store.conftest import _empty_postgres, postgres_database  # noqa: F401

pytestmark = pytest.mark.integration


@pytest.fixture
def database_url(postgres_database: str) -> str:  # noqa: F811
    _empty_postgres(postgres_database)
    return postgres_database


async def test_export_and_cases_from_postgres(world: World, tmp_path: Path) -> None:
    turns = rated(world)

    sft = await graft("feedback", "export", "--format", "openai-sft", "--tenant", "acme")
    dpo = await graft("feedback", "export", "--format", "dpo", "--tenant", "acme", "--no-tools")
    cases = await make_cases("--tenant", "acme", "--out", str(tmp_path / "cases.yaml"))

    assert sft.exit_code == 0 and dpo.exit_code == 0, (sft.output, dpo.output)
    assert [row["messages"][-1]["content"] for row in jsonl(sft.stdout)] == [
        "1234 × 5678 = 7006652.",
        "2 + 2 = 4.",
    ]
    [pair] = jsonl(dpo.stdout)
    assert pair["non_preferred_output"][0]["content"] == "4, I think."
    assert "tools" not in pair["input"]
    assert cases.exit_code == 0, cases.output
    suite = yaml.safe_load((tmp_path / "cases.yaml").read_text())
    check_suite(suite)
    assert [c["id"] for c in suite["cases"]] == [turns["vague"], turns["guess"]]
    assert "Say it for sure" in json.dumps(suite, ensure_ascii=False)
