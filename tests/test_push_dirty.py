"""A push asks only the contacts a provider may be behind on (``contact.dirty``), once it has seen every one.

An incremental cycle then costs what changed, not the size of the hub; these tests hold the ways a contact can
need a push without being asked for one: a provider new to the config, one that left it and came back, a write
to retry, a link another contact took over.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from filesync import read_jsonl, run, write_config, write_csv, write_jsonl

from state.store import PUSH_SCANNED, C, Store, WriteFailed, WriteOk


def _dirty(state_url: str) -> set[str]:
    store = Store(state_url)
    try:
        with store.transaction() as conn:
            return set(conn.execute(sa.select(C.c.email).where(C.c.dirty == sa.true())).scalars())
    finally:
        store.close()


def _people(n: int, **extra: str) -> list[dict[str, str]]:
    return [{"email": f"p{i}@example.com", "first_name": f"P{i}", **extra} for i in range(n)]


def test_a_cycle_settles_every_contact_no_provider_is_behind_on(tmp_path: Path, state_url: str):
    write_csv(tmp_path / "crm.csv", _people(20))
    config = write_config(tmp_path, state_url, {"crm": ("csv", "crm.csv"), "mail": ("jsonl", "mail.jsonl")})
    assert run(config, "sync")[0] == 0
    assert _dirty(state_url) == set()
    write_csv(tmp_path / "crm.csv", [*_people(20)[:19], {"email": "p19@example.com", "first_name": "Changed"}])
    assert run(config, "sync")[0] == 0
    assert read_jsonl(tmp_path / "mail.jsonl")["p19@example.com"]["first_name"] == "Changed"
    assert _dirty(state_url) == set()


def test_once_a_provider_saw_every_contact_its_pushes_ask_dirty_ones_only(tmp_path: Path, state_url: str,
                                                                          monkeypatch):
    write_csv(tmp_path / "crm.csv", _people(5))
    config = write_config(tmp_path, state_url, {"crm": ("csv", "crm.csv"), "mail": ("jsonl", "mail.jsonl")})
    asked: list[tuple[str, bool]] = []
    original = Store.push_candidates

    def spy(self: Store, provider: str, **kwargs):  # type: ignore[no-untyped-def]
        asked.append((provider, kwargs.get("dirty_only", False)))
        return original(self, provider, **kwargs)

    monkeypatch.setattr(Store, "push_candidates", spy)
    assert run(config, "sync")[0] == 0
    assert asked and not any(dirty for _, dirty in asked)  # the first push of each provider asks everyone
    asked.clear()
    assert run(config, "sync")[0] == 0
    assert asked and all(dirty for _, dirty in asked)


def test_a_provider_added_to_the_config_gets_every_contact(tmp_path: Path, state_url: str):
    write_csv(tmp_path / "crm.csv", _people(12))
    config = write_config(tmp_path, state_url, {"crm": ("csv", "crm.csv"), "mail": ("jsonl", "mail.jsonl")})
    assert run(config, "sync")[0] == 0
    assert _dirty(state_url) == set()  # nobody is dirty when the new provider arrives
    config = write_config(tmp_path, state_url, {"crm": ("csv", "crm.csv"), "mail": ("jsonl", "mail.jsonl"),
                                                "export": ("jsonl", "export.jsonl")})
    assert run(config, "sync")[0] == 0
    assert set(read_jsonl(tmp_path / "export.jsonl")) == {f"p{i}@example.com" for i in range(12)}


def test_a_provider_that_left_the_config_and_came_back_gets_what_changed_meanwhile(tmp_path: Path, state_url: str):
    write_csv(tmp_path / "crm.csv", _people(6))
    three = {"crm": ("csv", "crm.csv"), "mail": ("jsonl", "mail.jsonl"), "export": ("jsonl", "export.jsonl")}
    config = write_config(tmp_path, state_url, three)
    assert run(config, "sync")[0] == 0
    assert read_jsonl(tmp_path / "export.jsonl")["p3@example.com"]["first_name"] == "P3"
    # the export leaves the config; a change is synced without it, and every contact is settled again
    config = write_config(tmp_path, state_url, {"crm": ("csv", "crm.csv"), "mail": ("jsonl", "mail.jsonl")})
    write_csv(tmp_path / "crm.csv", [*_people(6)[:3], {"email": "p3@example.com", "first_name": "Moved on"},
                                     *_people(6)[4:]])
    assert run(config, "sync")[0] == 0
    assert _dirty(state_url) == set()
    config = write_config(tmp_path, state_url, three)
    assert run(config, "sync")[0] == 0
    assert read_jsonl(tmp_path / "export.jsonl")["p3@example.com"]["first_name"] == "Moved on"


def test_a_sync_of_one_provider_leaves_the_others_owed_their_push(tmp_path: Path, state_url: str):
    write_csv(tmp_path / "crm.csv", _people(4))
    write_jsonl(tmp_path / "mail.jsonl", [])
    config = write_config(tmp_path, state_url, {"crm": ("csv", "crm.csv"), "mail": ("jsonl", "mail.jsonl")})
    assert run(config, "sync", "--provider", "crm")[0] == 0
    assert _dirty(state_url) == {f"p{i}@example.com" for i in range(4)}  # mail is behind on all of them
    assert run(config, "sync")[0] == 0
    assert set(read_jsonl(tmp_path / "mail.jsonl")) == {f"p{i}@example.com" for i in range(4)}
    assert _dirty(state_url) == set()


def _settled_hub(state_url: str, tmp_path: Path, n: int = 3) -> Store:
    write_csv(tmp_path / "crm.csv", _people(n))
    config = write_config(tmp_path, state_url, {"crm": ("csv", "crm.csv"), "mail": ("jsonl", "mail.jsonl")})
    assert run(config, "sync")[0] == 0
    return Store(state_url)


def _ids(store: Store) -> dict[str, tuple[int, int]]:
    with store.transaction() as conn:
        return {r.email: (r.id, r.version) for r in conn.execute(sa.select(C.c.email, C.c.id, C.c.version))}


def test_a_write_to_retry_leaves_its_contact_dirty(tmp_path: Path, state_url: str):
    # A provider new to the config asks every contact once, settled ones too: one whose write there failed
    # must be asked again by the next cycle, which asks dirty contacts only.
    store = _settled_hub(state_url, tmp_path)
    try:
        contact_id, version = _ids(store)["p1@example.com"]
        store.record_writes("export", [], [WriteFailed(contact_id=contact_id, version=version, status="retry",
                                                       error="503")])
        store.settle_pushes(["crm", "mail", "export"], scanned=["export"])
        assert [c.contact_id for c in store.push_candidates("export", dirty_only=True)] == [contact_id]
    finally:
        store.close()
    assert _dirty(state_url) == {"p1@example.com"}


def test_a_link_taken_over_by_another_contact_leaves_its_holder_dirty(tmp_path: Path, state_url: str):
    store = _settled_hub(state_url, tmp_path)
    try:
        ids = _ids(store)
        holder, _ = ids["p0@example.com"]
        taker, version = ids["p2@example.com"]
        # the provider answers a write of p2 with the record p0 is linked to: the link moves, p0 is owed a push
        store.record_writes("mail", [WriteOk(contact_id=taker, remote_id="p0@example.com", base={},
                                             ack_hash="x", version=version)], [])
        store.settle_pushes(["crm", "mail"])
        assert [c.contact_id for c in store.push_candidates("mail", dirty_only=True)] == [holder]
    finally:
        store.close()


def test_a_clear_never_applies_to_a_contact_changed_since_it_was_checked(tmp_path: Path, state_url: str, monkeypatch):
    store = _settled_hub(state_url, tmp_path)
    try:
        contact_id, _ = _ids(store)["p1@example.com"]
        store.unsubscribe("p1@example.com", evidence="test")  # dirty, and every provider is behind on it
        store.record_writes("mail", [], [])
        with store.transaction() as conn:  # both providers acknowledge the new version
            conn.execute(sa.text("UPDATE link SET acked_version = (SELECT version FROM contact WHERE id = :c) "
                                 "WHERE contact_id = :c"), {"c": contact_id})
        # another writer changes the contact between the check and the clear
        original = Store.transaction

        def racing(self: Store):  # type: ignore[no-untyped-def]
            context = original(self)
            conn = context.__enter__()
            real_execute = conn.execute

            def execute(statement, *args, **kwargs):  # type: ignore[no-untyped-def]
                if isinstance(statement, sa.Update) and statement.table is C and args and isinstance(args[0], list):
                    real_execute(sa.update(C).where(C.c.id == contact_id).values(touched=C.c.touched + 1))
                return real_execute(statement, *args, **kwargs)

            monkeypatch.setattr(conn, "execute", execute)

            class Wrapped:
                def __enter__(self_inner):  # type: ignore[no-untyped-def]
                    return conn

                def __exit__(self_inner, *exc):  # type: ignore[no-untyped-def]
                    return context.__exit__(*exc)

            return Wrapped()

        monkeypatch.setattr(Store, "transaction", racing)
        assert store.settle_pushes(["crm", "mail"]) == 0
    finally:
        store.close()
    assert _dirty(state_url) == {"p1@example.com"}


def test_scan_marks_belong_to_providers_of_the_config(tmp_path: Path, state_url: str):
    store = _settled_hub(state_url, tmp_path)
    try:
        assert store.push_scanned("crm") and store.push_scanned("mail")
        store.settle_pushes(["crm"])
        assert store.push_scanned("crm") and not store.push_scanned("mail")
        assert store.get_meta(PUSH_SCANNED + "mail") is None
    finally:
        store.close()
