"""Logging for every process of the service: one JSON object per line (python-json-logger), each
carrying the id of the request it belongs to.

The API's request-id middleware sets `request_id` for the request; the in-process dispatcher runs
the assessment in a copy of that context, and the Celery dispatcher sends the id in the task's
headers (the task sets it again), so an assessment's log lines carry the id of the upload that
started it. `configure` is called by ``claimlane serve`` (through uvicorn's log config), by the
Celery worker and by the CLI; tests leave logging as pytest sets it.
"""

from __future__ import annotations

import logging
import logging.config
from contextvars import ContextVar
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("claimlane_request_id", default=None)
# The Celery message header that carries it to a task.
TASK_REQUEST_ID_HEADER = "claimlane_request_id"

# The fields every JSON line has (python-json-logger renames them; extra= fields are added as given).
JSON_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s %(process)d"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class RequestIdFilter(logging.Filter):
    """Adds `request_id` (None outside a request) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        record.__dict__.pop("color_message", None)  # uvicorn's copy of the message with terminal colours
        return True


def config(log_format: str = "json", level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` for the service (also handed to uvicorn as its log_config)."""
    formatter: dict[str, Any]
    if log_format == "json":
        formatter = {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": JSON_FORMAT,
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
    else:
        formatter = {"format": TEXT_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"default": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["request_id"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            # uvicorn's own loggers go through the same handler; its access log is replaced by
            # claimlane.access (one line per request, with the route, status, time and request id).
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


def configure(log_format: str = "json", level: str = "INFO") -> None:
    logging.config.dictConfig(config(log_format, level))
