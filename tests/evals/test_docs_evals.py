"""docs/evals.md is tested: its suites load, its settings are valid, its commands parse.

The Python example runs in tests/test_docs.py with every other docs example; here are the
blocks that test cannot run: YAML suites (loaded with ``parse_suite``), the GitHub Actions
job (valid YAML whose ``graft eval`` command parses against the real click command, with the
suite it names), and every ``graft eval`` line of the shell blocks.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from tests.test_docs import Block, fenced_blocks

from graft.cli import cli
from graft.cli_eval import eval_group
from graft.config import load_settings
from graft.evals.suite import CHECK_KINDS, load_suite, parse_suite

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "evals.md"


def blocks(lang: str) -> list[Block]:
    return [b for b in fenced_blocks(DOC) if b.lang == lang]


def suites() -> list[Block]:
    return [b for b in blocks("yaml") if "cases:" in b.code]


def commands() -> list[str]:
    found = []
    for block in blocks("bash"):
        for line in block.code.replace("\\\n", " ").splitlines():
            line = line.split("#")[0].strip()
            if line.startswith("graft eval"):
                found.append(line)
    return found


def parse(command: str) -> click.Context:
    """``command``'s arguments parsed by the real ``graft eval`` subcommand it names."""
    words = shlex.split(command)
    assert words[0].endswith("graft") and words[1] == "eval", command
    assert cli.commands["eval"] is eval_group
    args = words[2:]
    if args[0] not in eval_group.commands:  # graft eval SUITE is graft eval run SUITE
        args = ["run", *args]
    return eval_group.commands[args[0]].make_context(args[0], args[1:])


def test_the_doc_has_suites_commands_and_a_ci_job() -> None:
    assert len(suites()) >= 1 and len(commands()) >= 4
    assert any("jobs:" in b.code for b in blocks("yaml"))


@pytest.mark.parametrize("block", suites(), ids=lambda b: b.name)
def test_every_suite_in_the_doc_loads(block: Block) -> None:
    assert parse_suite(block.code, name=block.name).cases


def test_every_check_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [kind for kind in CHECK_KINDS if f"| `{kind}` |" not in text]
    assert not missing, f"checks without a row in docs/evals.md: {missing}"


@pytest.mark.parametrize("command", commands())
def test_every_command_in_the_doc_parses(command: str) -> None:
    ctx = parse(command)
    if ctx.command.name == "bfcl":  # BFCL's cases, no suite
        assert ctx.params["category"] and ctx.params["limit"]
    else:
        assert ctx.params["suite_path"]


def test_the_ci_job_runs_a_command_that_parses_on_a_suite_that_loads() -> None:
    [job] = [b for b in blocks("yaml") if "jobs:" in b.code]
    workflow: dict[str, Any] = yaml.safe_load(job.code)
    steps = workflow["jobs"]["evals"]["steps"]
    [run] = [s["run"] for s in steps if "graft eval compare" in s.get("run", "")]
    ctx = parse(" ".join(run.split()))
    assert ctx.params["baseline"] == "local:smollm2"
    assert ctx.params["junit"] is not None and ctx.params["html"] is not None
    assert load_suite(ROOT / ctx.params["suite_path"]).cases


@pytest.mark.parametrize("block", blocks("toml"), ids=lambda b: b.name)
def test_the_settings_in_the_doc_are_valid(block: Block, tmp_path: Path) -> None:
    path = tmp_path / "graft.toml"
    path.write_text(block.code, encoding="utf-8")
    settings = load_settings(path)
    assert settings.evals.judge == "openai:gpt-4o-mini" and settings.evals.threshold == 0.05
