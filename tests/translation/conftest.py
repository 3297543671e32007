"""A fake translation service on 127.0.0.1 that speaks LibreTranslate and DeepL.

Its "translation" is a phrase book, and ``<target>text`` for anything not in it, so every
test knows the answer. It keeps each request (path, headers, JSON body) to check shapes and
keys, and can be made slow (``delay``) or broken (``status``, or ``broken`` texts).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

PHRASES = {
    ("zh", "en"): {
        "我的订单在哪里？": "Where is my order?",
        "谢谢你的帮助。": "Thank you for your help.",
        "好的，明白了。": "OK, understood.",
    },
    ("en", "zh"): {
        "Your order shipped yesterday.": "您的订单昨天已发货。",
        "It will arrive on Friday.": "它将在周五到达。",
        "Anything else?": "还有别的吗？",
        "Hello": "你好",
    },
}
DEEPL_KEY = "test-deepl-key-0123456789:fx"


def phrase(text: str, source: str, target: str) -> str:
    return PHRASES.get((source, target), {}).get(text, f"<{target}>{text}")


def guess(text: str) -> str:
    return "zh" if any("\u4e00" <= c <= "\u9fff" for c in text) else "en"


class FakeTranslator:
    """The fake service; ``requests`` holds what it was sent, oldest first."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        self.delay = 0.0
        self.status = 200
        self.broken: set[str] = set()
        self.api_key: str | None = None
        self.deepl_key = DEEPL_KEY
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                service.requests.append((self.path, dict(self.headers), body))
                time.sleep(service.delay)
                status, answer = service.answer(self.path, self.headers, body)
                data = json.dumps(answer, ensure_ascii=False).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (a deadline test)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    @property
    def texts(self) -> list[str]:
        """Every text the service was asked to translate."""
        out: list[str] = []
        for _, _, body in self.requests:
            value = body.get("q", body.get("text"))
            out += value if isinstance(value, list) else [value]
        return out

    def answer(self, path: str, headers: Any, body: dict[str, Any]) -> tuple[int, Any]:
        if self.status != 200:
            return self.status, {"error": "the service is down"}
        if path == "/translate":
            return self._libretranslate(body)
        if path == "/v2/translate":
            return self._deepl(headers, body)
        return 404, {"error": "no such path"}

    def _libretranslate(self, body: dict[str, Any]) -> tuple[int, Any]:
        if self.api_key is not None and body.get("api_key") != self.api_key:
            return 403, {"error": "Invalid API key"}
        texts = body["q"] if isinstance(body["q"], list) else [body["q"]]
        if self.broken.intersection(texts):
            return 500, {"error": "cannot translate that"}
        sources = [guess(t) if body["source"] == "auto" else body["source"] for t in texts]
        translated = [phrase(t, s, body["target"]) for t, s in zip(texts, sources, strict=True)]
        detected = [{"confidence": 90.0, "language": s} for s in sources]
        if isinstance(body["q"], list):
            return 200, {"translatedText": translated, "detectedLanguage": detected}
        return 200, {"translatedText": translated[0], "detectedLanguage": detected[0]}

    def _deepl(self, headers: Any, body: dict[str, Any]) -> tuple[int, Any]:
        if headers.get("Authorization") != f"DeepL-Auth-Key {DEEPL_KEY}":
            return 403, {"message": "Wrong endpoint or auth key"}
        target = {"ZH-HANS": "zh", "EN-US": "en"}.get(body["target_lang"], body["target_lang"])
        out = []
        for text in body["text"]:
            source = body.get("source_lang", "").lower() or guess(text)
            out.append(
                {"detected_source_language": source.upper(), "text": phrase(text, source, target)}
            )
        return 200, {"translations": out}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def service() -> Iterator[FakeTranslator]:
    fake = FakeTranslator()
    yield fake
    fake.close()
