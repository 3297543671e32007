"""One upstream session serves every user: cookies an upstream sets are never sent back.

The upstream answers by its host name (``localhost``): aiohttp's default cookie jar keeps
cookies from host names (not from bare IP addresses), so this is where a shared jar would
carry one user's cookie into the next user's request.
"""

from __future__ import annotations

from pydantic import SecretStr
from tests.models.test_openai import Upstream, answer, ask, collect

from graft.config import ProviderSettings
from graft.models.openai import OpenAIModel

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
}


async def test_a_cookie_set_by_the_upstream_is_not_sent_with_later_requests() -> None:
    upstream = Upstream()
    await upstream.start()
    port = upstream.base_url.rsplit(":", 1)[1].split("/")[0]
    provider = ProviderSettings(
        base_url=f"http://localhost:{port}/v1",
        api_key=SecretStr("k"),
        timeout=2.0,
        connect_timeout=1.0,
        max_retries=0,
    )
    model = OpenAIModel("vllm:m", provider)
    try:
        upstream.script(
            answer(200, COMPLETION, {"Set-Cookie": "session=alice-secret; Path=/"}),
            answer(200, COMPLETION),
        )
        await collect(model, ask("first user", stream=False))
        await collect(model, ask("second user", stream=False))
    finally:
        await model.aclose()
        await upstream.stop()
    assert not upstream.errors, upstream.errors
    assert len(upstream.received) == 2
    assert "cookie" not in upstream.received[1].headers
