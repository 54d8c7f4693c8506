"""The toxics of one proxy, per direction and in the order added, and the links they run on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from opsdrill.toxiproxy import errors
from opsdrill.toxiproxy.link import Link
from opsdrill.toxiproxy.toxics import Toxic, new_toxic, parse_toxicity

__all__ = ["DIRECTIONS", "ToxicCollection"]

DIRECTIONS = ("upstream", "downstream")  # listing order of the Go server


class ToxicCollection:
    """Adds, updates and removes toxics, and applies each change to every open link."""

    def __init__(self) -> None:
        self.chains: dict[str, list[Toxic]] = {direction: [] for direction in DIRECTIONS}
        self.links: set[Link] = set()

    def __iter__(self) -> Iterator[Toxic]:
        for direction in DIRECTIONS:
            yield from self.chains[direction]

    def to_json(self) -> list[dict[str, object]]:
        return [toxic.to_json() for toxic in self]

    def find(self, name: str) -> Toxic:
        for toxic in self:
            if toxic.name == name:
                return toxic
        raise errors.toxic_not_found()

    def chain(self, direction: str) -> list[Toxic]:
        return list(self.chains[direction])

    def add(self, body: object) -> Toxic:
        toxic = new_toxic(body)
        if any(existing.name == toxic.name for existing in self):
            raise errors.toxic_already_exists()
        self.chains[toxic.direction].append(toxic)
        for link in self._links(toxic.direction):
            link.add_toxic(toxic)
        return toxic

    def update(self, name: str, body: object) -> Toxic:
        """Change attributes and/or toxicity; other fields of the body are ignored, as in Go."""
        toxic = self.find(name)
        if not isinstance(body, dict):
            raise errors.bad_request_body("expected a JSON object")
        fields: dict[str, Any] = body
        toxicity = parse_toxicity(fields.get("toxicity", toxic.toxicity))
        toxic.set_attributes(fields.get("attributes"))
        toxic.toxicity = toxicity
        for link in self._links(toxic.direction):
            link.update_toxic(toxic)
        return toxic

    def remove(self, name: str) -> None:
        toxic = self.find(name)
        self.chains[toxic.direction].remove(toxic)
        for link in self._links(toxic.direction):
            link.remove_toxic(toxic)

    def reset(self) -> None:
        for toxic in list(self):
            self.remove(toxic.name)

    def _links(self, direction: str) -> list[Link]:
        return [link for link in self.links if link.direction == direction and not link.closed]
