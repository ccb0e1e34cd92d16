"""The adjusters' review console: server-rendered pages over `services.reviewing` (see `routes`)."""

from api.console.routes import STATIC_DIR, router

__all__ = ["STATIC_DIR", "router"]
