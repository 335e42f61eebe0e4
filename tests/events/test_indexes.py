"""The event indexes issue 16's queries rely on stay in step with the code that uses them."""

from memoryhub.events.models import Event
from memoryhub.locks.events import MULTI_RESOURCE_TYPES


def test_the_multi_resource_lock_index_covers_every_multi_resource_type():
    index = next(index for index in Event._meta.indexes if index.name == "event_multi_resource_lock")
    types = dict(index.condition.children)["type__in"]
    assert sorted(types) == sorted(MULTI_RESOURCE_TYPES)
