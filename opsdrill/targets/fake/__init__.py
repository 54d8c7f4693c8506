"""The fake backend: a target in memory, for opsdrill's own tests of what is not the stack."""

from opsdrill.targets.fake.target import FakeService, FakeTarget

__all__ = ["FakeService", "FakeTarget"]
