"""``run_turn``: the one path of a chat turn, for every entry point.

HTTP API, CLI, and later voice and evals all call this function; reading it top to bottom
shows the whole data flow::

    authorize ─▶ load history ─▶ store the new messages ─▶ input middleware
        ─▶ agent loop (model ⇄ tools, approvals) ─▶ output middleware ─▶ link guard
        ─▶ events ─▶ store what was shown (and the passages it cited)

Authentication happens at the edge (it depends on the transport) and arrives here as the
``Principal``. Errors that make the request itself invalid (unknown assistant, forbidden,
unknown conversation, model not available) raise before the first event, so the HTTP layer
can answer with a status code. After ``TurnStarted`` failures become an ``ErrorEvent``
followed by ``TurnDone("error")``, and the turn is stored as failed with its error. A turn
whose client went away (or that was cancelled) before it finished is stored as
``interrupted``, with the part of the answer the client was shown.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from graft import audit, telemetry
from graft.agent import UNTRUSTED_NOTICE, AgentRun, ModelParams
from graft.config import AssistantSettings
from graft.context import Context, Principal
from graft.errors import InvalidRequest, NotFound, PermissionDenied
from graft.events import Citations, ErrorEvent, Event, TextDelta, TurnDone, TurnStarted
from graft.knowledge.citations import CitationGuard
from graft.links import LinkGuard
from graft.messages import Message, Usage
from graft.middleware import apply_input, apply_output, apply_store
from graft.model_routing import answered, route_turn, routed_model
from graft.policy import authorize_assistant
from graft.store.base import TurnStatus
from graft.tools.base import ToolDef
from graft.tools.select import narrow_toolbox

if TYPE_CHECKING:
    from graft.runtime import Graft

__all__ = ["TurnRequest", "run_turn"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class TurnRequest:
    """What a caller asks of one turn.

    ``messages`` are the new messages when ``conversation_id`` is set, or the whole history
    for a stateless call. ``client_tools`` are tools the caller runs itself.
    """

    assistant: str
    messages: list[Message]
    conversation_id: str | None = None
    client_tools: list[ToolDef] = field(default_factory=list)
    params: ModelParams = field(default_factory=ModelParams)
    stream: bool = True
    model: str | None = None
    """A model id (``provider:name``) instead of the assistant's own: eval runs that compare
    models (``graft eval compare``) run the same assistant on each. Not set from HTTP."""


async def run_turn(
    graft: Graft, request: TurnRequest, principal: Principal
) -> AsyncGenerator[Event, None]:
    """Run one turn for ``principal``, yielding events from ``TurnStarted`` to ``TurnDone``."""
    assistant = await graft.resolve_assistant(request.assistant, principal)
    try:
        authorize_assistant(principal, request.assistant, assistant)
    except PermissionDenied as exc:
        await audit.record_denied(graft.store, principal, f"assistant:{request.assistant}", exc)
        raise
    _check_messages(request, graft.settings.limits.max_messages)
    middleware = graft.middleware(assistant.middleware)
    store = graft.store

    ctx = Context(
        principal,
        graft.settings,
        request.assistant,
        assistant,
        request.conversation_id,
        store=store,
        get_model=graft.get_model,
        frames=graft.frames,
    )
    toolbox = await graft.tools.resolve(ctx)
    clashes = sorted({t.name for t in request.client_tools}.intersection(toolbox.owners))
    if clashes:
        raise InvalidRequest(f"tool {clashes[0]!r} clashes with a server-side tool", param="tools")

    started = time.perf_counter()
    history: list[Message] = []
    if request.conversation_id is not None:
        await graft.pending.wait(request.conversation_id)  # the previous answer is stored
        history = await store.load_history(request.conversation_id, principal)
    # What the database keeps may be less than what the model gets (redact_pii store).
    stored = await apply_store(middleware, request.messages, ctx)
    # The primary model, or a canary's share of conversations (graft.model_routing).
    route = route_turn(
        graft.settings, request.assistant, assistant, principal, history + stored, request.model
    )
    model = routed_model(graft, route)
    # Shielded: a client gone meanwhile must not leave a stored turn that nobody finishes
    # (the cancellation arrives inside the try below, which stores it as interrupted).
    with anyio.CancelScope(shield=True):
        conversation_id, turn_id = await store.begin_turn(
            principal,
            assistant=request.assistant,
            model=route.model,
            conversation_id=request.conversation_id,
            new_messages=stored,
        )
    ctx.conversation_id, ctx.turn_id = conversation_id, turn_id
    telemetry.start_turn(ctx, route.model)  # a no-op unless [telemetry] traces is on
    yield TurnStarted(conversation_id, turn_id, route.model)

    run: AgentRun | None = None
    pending = False
    error: str | None = None
    status: TurnStatus | None = None  # done or failed, by ``error``; interrupted: cut short
    finish_reason: str | None = None
    cited: list[dict[str, Any]] | None = None  # the answer's footnotes, stored with the turn
    visible = _VisibleText()
    try:
        system = Message("system", f"{assistant.system_prompt}\n\n{UNTRUSTED_NOTICE}")
        messages = await apply_input(middleware, [system, *history, *request.messages], ctx)
        # Documents (graft.knowledge): [n] markers must name passages this turn retrieved.
        links = LinkGuard(graft.settings.link_hosts)
        guard, messages = await _knowledge(graft, assistant, ctx, messages, links)
        # Many tools: the model sees those that fit this turn best (graft.tools.select).
        offered = await narrow_toolbox(
            toolbox,
            messages,
            shown=assistant.tools_shown,
            pinned=[*assistant.pinned_tools, request.params.tool_choice],
        )
        run = AgentRun(
            model,
            messages,
            offered,
            ctx,
            graft.settings.limits,
            client_tools=request.client_tools,
            params=_params(request, assistant.temperature, assistant.max_tokens),
            stream=request.stream,
            approvals=graft.approvals,
        )
        # The guard is a plain call per event, not one more generator in the chain.
        visible.since = time.perf_counter()  # per-model latency: to the first event shown
        async for produced in apply_output(middleware, run.events(), ctx):
            for event in guard.guard(produced):
                visible.add(event)
                if isinstance(event, ErrorEvent):
                    error = event.message
                elif isinstance(event, Citations) and event.stage == "cited":
                    cited = event.citations
                elif isinstance(event, TurnDone):
                    finish_reason = event.finish_reason
                    event.model, event.route = answered(model, route)
                    event.first_token_ms = visible.first_ms
                    event.duration_ms = (time.perf_counter() - started) * 1000
                    # The caller may send the answer's last byte before storing it: until
                    # then, readers of this conversation wait (graft.store.pending).
                    await graft.pending.answered(conversation_id)
                    pending = True
                yield event
    except GeneratorExit:
        if finish_reason is None and error is None:  # closed after TurnDone: the turn is whole
            error, status = "the client went away before the turn finished", "interrupted"
        raise
    except Exception as exc:
        log.exception("turn %s failed", turn_id)
        error = f"internal error ({type(exc).__name__})"
        yield ErrorEvent("internal error while running the turn", code="internal_error")
        yield TurnDone("error", run.usage if run else Usage(), *answered(model, route))
        finish_reason = "error"
    finally:
        if finish_reason is None and error is None:
            error, status = "the turn was cancelled", "interrupted"
        telemetry.end_turn(ctx, finish_reason, error, run.usage if run else Usage())
        with anyio.CancelScope(shield=True):
            try:
                shown = visible.apply(run.new_messages, finished=error is None) if run else []
                answered_by, route_taken = answered(model, route)
                await store.finish_turn(
                    turn_id,
                    messages=await apply_store(middleware, shown, ctx),
                    tool_runs=run.tool_runs if run else [],
                    usage=run.usage if run else Usage(),
                    finish_reason=finish_reason,
                    duration_ms=(time.perf_counter() - started) * 1000,
                    error=error,
                    citations=cited,
                    model=answered_by,
                    route=route_taken,
                    first_token_ms=visible.first_ms,
                    status=status,
                )
            except NotFound:
                # The conversation was deleted while the turn ran: nothing left to update.
                log.info("turn %s finished after its conversation was deleted", turn_id)
            finally:
                if pending:
                    await graft.pending.stored(conversation_id)


async def _knowledge(
    graft: Graft,
    assistant: AssistantSettings,
    ctx: Context,
    messages: list[Message],
    links: LinkGuard,
) -> tuple[LinkGuard | _Shown, list[Message]]:
    """The guard of the turn's events, and its messages after automatic retrieval.

    An assistant without collections keeps the link guard alone: one plain call per event
    on the hot path, no generator.
    """
    if not assistant.collections:
        return links, messages
    cite = CitationGuard()
    if assistant.retrieval != "always":
        return _Shown(links, cite, []), messages
    from graft.knowledge.toolset import retrieve_for_turn

    messages, retrieved = await retrieve_for_turn(graft.tools.toolsets, ctx, messages)
    first = [] if retrieved is None else list(cite.guard(retrieved))
    return _Shown(links, cite, first), messages


class _Shown:
    """The guards every event passes before it is shown: links, then citations.

    Events of the turn's own (automatic retrieval's passages) go out before the first.
    """

    def __init__(self, links: LinkGuard, cite: CitationGuard, first: list[Event]) -> None:
        self.links = links
        self.cite = cite
        self.first = first

    def guard(self, event: Event) -> Iterator[Event]:
        """The events to show in place of ``event``."""
        if self.first:
            yield from self.first
            self.first = []
        for linked in self.links.guard(event):
            yield from self.cite.guard(linked)


class _VisibleText:
    """The answer text as the client saw it, after output middleware, to be stored.

    What is stored must be what was shown: a redaction middleware that hides a phone number
    from the client must hide it from the database too. Text runs between tool events map
    onto the assistant messages that have text, in order. ``first_ms`` is how long after
    ``since`` (the agent loop's start) the first event was shown: a model's latency.
    """

    def __init__(self) -> None:
        self.segments: list[list[str]] = [[]]
        self.since: float | None = None
        self.first_ms: float | None = None

    def add(self, event: Event) -> None:
        if self.first_ms is None and self.since is not None:
            self.first_ms = (time.perf_counter() - self.since) * 1000
        if isinstance(event, TextDelta):
            self.segments[-1].append(event.text)
        elif self.segments[-1]:
            self.segments.append([])

    def apply(self, messages: list[Message], *, finished: bool) -> list[Message]:
        """``messages`` with their text replaced by what was shown.

        A turn cut short (client gone, upstream failure) has shown text that no finished
        message holds yet: that partial answer is kept as a last assistant message.
        """
        texts = ["".join(s) for s in self.segments if s]
        spoken = [m for m in messages if m.role == "assistant" and m.content]
        partial = texts.pop() if not finished and len(texts) == len(spoken) + 1 else None
        if len(texts) != len(spoken):
            # Middleware merged or dropped whole answers: keep all of what was shown, once.
            log.debug("visible text has %d runs for %d answers", len(texts), len(spoken))
            texts = [*([""] * (len(spoken) - 1)), "".join(texts)] if spoken else []
        out = []
        replacements = dict(zip((id(m) for m in spoken), texts, strict=False))
        for message in messages:
            if id(message) in replacements:
                text = replacements[id(message)]
                message = Message("assistant", text or None, message.tool_calls)
            out.append(message)
        if partial:
            out.append(Message("assistant", partial))
        return out


def _params(request: TurnRequest, temperature: float | None, max_tokens: int | None) -> ModelParams:
    params = request.params
    return ModelParams(
        temperature=params.temperature if params.temperature is not None else temperature,
        top_p=params.top_p,
        max_tokens=params.max_tokens if params.max_tokens is not None else max_tokens,
        stop=params.stop,
        seed=params.seed,
        tool_choice=params.tool_choice,
    )


def _check_messages(request: TurnRequest, max_messages: int) -> None:
    if not request.messages:
        raise InvalidRequest("messages must contain at least one message", param="messages")
    if len(request.messages) > max_messages:
        raise InvalidRequest(
            f"too many messages: {len(request.messages)} > {max_messages}", param="messages"
        )
    if request.messages[-1].role not in ("user", "tool"):
        raise InvalidRequest(
            "the last message must come from the user or answer a tool call", param="messages"
        )
