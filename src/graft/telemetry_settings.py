"""``[telemetry]``: OpenTelemetry traces and the log format (``graft.telemetry``).

Apart from ``graft.telemetry`` so that ``graft.config`` can hold it without importing
OpenTelemetry: with ``traces = "off"`` (the default) nothing of it is imported at all.
docs/configuration.md ("Telemetry") describes each field.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["TelemetrySettings"]


class TelemetrySettings(BaseModel):
    """``[telemetry]``: where spans go, how many are kept, and how log lines look."""

    model_config = ConfigDict(extra="forbid")

    traces: Literal["off", "console", "otlp"] = Field(
        default="off",
        description="`off`: no tracing, OpenTelemetry is not even imported; `console`: spans "
        "printed on stdout (debugging); `otlp`: sent to `otlp_endpoint` (needs the "
        "`observability` extra).",
    )
    otlp_endpoint: str = Field(
        default="http://127.0.0.1:4318/v1/traces",
        description="OTLP/HTTP (protobuf) traces URL of a collector, Jaeger, Tempo...",
    )
    service_name: str = Field(
        default="graft", min_length=1, description="`service.name` of every span."
    )
    sample_ratio: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Share of new traces kept (0.1: one in ten); a request that arrives with "
        "a sampled `traceparent` follows its caller's decision.",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="`json`: one JSON object per log line (time, level, logger, message, "
        "request_id, trace_id, span_id); `graft serve --log-format` overrides it.",
    )

    @field_validator("otlp_endpoint")
    @classmethod
    def _endpoint_is_a_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"{value!r} is not an OTLP/HTTP URL such as http://127.0.0.1:4318/v1/traces"
            )
        return value
