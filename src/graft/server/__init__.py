"""The HTTP face of graft: OpenAI-compatible routes, conversations REST, health and metrics."""

from graft.server.app import create_app

__all__ = ["create_app"]
