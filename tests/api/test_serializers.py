"""Input serializers build their fields once per class and thread (memoryhub/api/serializers.py)."""

import threading

from memoryhub.locks.api import LockInput
from memoryhub.memories.api import MemoryPutInput


def validate(serializer_class, data):
    serializer = serializer_class(data=data)
    return serializer.is_valid(), (serializer.validated_data if serializer.is_valid() else serializer.errors)


def test_fields_are_built_once_per_thread_and_each_instance_validates_its_own_body():
    first, second = MemoryPutInput(data={}), MemoryPutInput(data={})
    assert first.fields is second.fields  # no copy per instance
    assert validate(MemoryPutInput, {"content": [1]}) == (False, {"content": ["Must be a JSON object."]})
    assert validate(MemoryPutInput, {"content": {"n": 1}, "kind": "semantic"}) == (
        True,
        {"content": {"n": 1}, "kind": "semantic", "reason": ""},
    )
    ok, errors = validate(MemoryPutInput, {"content": {}, "updated_by": "forged"})
    assert not ok and set(errors) == {"updated_by"}
    ok, errors = validate(LockInput, {"resources": ["a"], "ttl_seconds": 0})
    assert not ok and set(errors) == {"ttl_seconds"}


def test_threads_validating_at_once_each_get_their_own_answer():
    others: dict = {}
    results: list = []

    def work(index: int) -> None:
        others[index] = MemoryPutInput(data={}).fields
        for n in range(200):
            body = {"content": {"n": n, "by": index}} if n % 2 else {"content": "not an object"}
            ok, value = validate(MemoryPutInput, body)
            results.append(ok == bool(n % 2) and (value["content"]["by"] == index if ok else "content" in value))

    threads = [threading.Thread(target=work, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 800 and all(results)
    assert len({id(fields) for fields in others.values()}) == 4  # one set of fields per thread
