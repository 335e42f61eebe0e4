"""The SQLite backend (memoryhub.sqlite): a process's threads queue for the write lock, which is held
from BEGIN to COMMIT/ROLLBACK and never left behind; threads of one process and two processes writing
the same file lose nothing and keep the log gap-free."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import pytest
from django.db import IntegrityError, connection, transaction

from contexts.models import ContextEntry, Receipt
from contexts.services import context_send
from memoryhub.agents.models import Agent
from memoryhub.events.models import Event
from memoryhub.sqlite.base import write_lock
from tests import servers
from tests.conftest import on_postgres

pytestmark = [
    pytest.mark.skipif(on_postgres(), reason="the embedded default's database"),
    pytest.mark.django_db(transaction=True),
]


def this_files_lock():
    return write_lock(str(connection.settings_dict["NAME"]))


def assert_exact_log(sends: int) -> None:
    assert ContextEntry.objects.count() == sends
    assert Receipt.objects.count() == sends  # one agent in the role: one receipt per entry
    seqs = list(Event.objects.filter(type="context.sent").order_by("seq").values_list("seq", flat=True))
    assert len(seqs) == sends
    every = list(Event.objects.order_by("seq").values_list("seq", flat=True))
    assert every == list(range(every[0], every[0] + len(every)))  # no gap, no repeat


def test_the_write_lock_is_held_from_begin_to_commit_or_rollback(make_agent):
    lock = this_files_lock()
    assert not lock.locked()
    with transaction.atomic():
        assert lock.locked()
        with transaction.atomic():  # a savepoint: still the one transaction
            assert lock.locked()
        assert lock.locked()
    assert not lock.locked()
    with pytest.raises(IntegrityError), transaction.atomic():
        assert lock.locked()
        Agent.objects.create(id="dup", role="r")
        Agent.objects.create(id="dup", role="r")
    assert not lock.locked()
    with transaction.atomic():
        connection.close()  # a connection closed mid-transaction gives the lock back too
        assert not lock.locked()
    connection.ensure_connection()


def test_a_second_writer_is_held_at_begin_until_the_first_commits(make_agent):
    inside, done, order = threading.Event(), threading.Event(), []
    release = threading.Event()

    def first() -> None:
        try:
            with transaction.atomic():
                Agent.objects.create(id="first", role="r")
                inside.set()
                release.wait(10)
                order.append("first committed")
        finally:
            connection.close()

    def second() -> None:
        try:
            inside.wait(10)
            with transaction.atomic():
                order.append("second in")
                Agent.objects.create(id="second", role="r")
        finally:
            connection.close()
            done.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    inside.wait(10)
    assert not done.wait(0.2)  # the second is held at BEGIN while the first is inside
    release.set()
    for thread in threads:
        thread.join(10)
    assert order == ["first committed", "second in"]
    assert set(Agent.objects.values_list("id", flat=True)) >= {"first", "second"}


def test_threads_of_one_process_writing_at_once_lose_nothing(make_agent):
    sender = make_agent("docs-1", "docs")
    make_agent("ops-1", "ops")
    threads, per_thread, errors = 8, 15, []

    def send(number: int) -> None:
        try:
            for n in range(per_thread):
                context_send(actor=sender.actor, to_role="ops", context_type="note", content={"t": number, "n": n})
        except Exception as exc:  # collected: an assertion in a thread would go unseen
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=send, args=(number,)) for number in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert errors == []
    assert_exact_log(threads * per_thread)


WRITER = textwrap.dedent(
    """
    import sys, threading
    import django
    django.setup()
    from django.db import connection
    from contexts.services import context_send
    from memoryhub.actors import Actor
    from memoryhub.agents.models import Agent

    sender = Actor.for_agent(Agent.objects.get(id="docs-1"))
    connection.close()
    print("ready", flush=True)
    sys.stdin.readline()  # both processes start writing at the same moment

    errors = []

    def send(number):
        try:
            for n in range({per_thread}):
                context_send(actor=sender, to_role="ops", context_type="note", content={{"t": number, "n": n}})
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(number,)) for number in range({threads})]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sys.exit("; ".join(errors) if errors else 0)
    """
)


PROCESSES = 2


def test_two_processes_writing_the_same_file_lose_nothing(make_agent):
    make_agent("docs-1", "docs")
    make_agent("ops-1", "ops")
    threads, per_thread = 4, 15
    env = {
        **os.environ,
        "DATABASE_URL": servers.test_database_url(),
        "REDIS_URL": "",
        "DJANGO_SETTINGS_MODULE": "memoryhub.settings",
    }
    code = WRITER.format(threads=threads, per_thread=per_thread)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=servers.ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    for process in processes:
        assert process.stdout.readline().strip() == "ready", process.stderr.read()
    for process in processes:
        process.stdin.write("go\n")
        process.stdin.flush()
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
    assert_exact_log(PROCESSES * threads * per_thread)
