"""Server-Sent Events: the parser (no I/O, tested alone) and the event type."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Optional


@dataclass
class Event:
    """One event of GET /v1/events: `added`, `removed`, `present` or `resync`."""

    type: str
    id: Optional[str]
    data: Any = field(default=None)

    @property
    def device(self) -> Optional[dict]:
        """The device the event is about (None for `resync`)."""
        return self.data.get("device") if isinstance(self.data, dict) else None


class EventParser:
    """Turns the lines of a `text/event-stream` into events (the WHATWG rules the daemon
    needs: `event`, `data` (joined with newlines), `id`, `retry`; comments ignored)."""

    def __init__(self) -> None:
        self.last_id: Optional[str] = None
        self.retry_ms: Optional[int] = None
        self._type = ""
        self._data: list = []

    def feed(self, lines: Iterable[str]) -> Iterator[Event]:
        for line in lines:
            event = self.line(line)
            if event is not None:
                yield event

    def line(self, line: str) -> Optional[Event]:
        line = line.rstrip("\r\n")
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._type = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> Optional[Event]:
        if not self._data:
            self._type = ""
            return None
        text = "\n".join(self._data)
        try:
            data: Any = json.loads(text)
        except ValueError:
            data = text
        event = Event(type=self._type or "message", id=self.last_id, data=data)
        self._type, self._data = "", []
        return event
