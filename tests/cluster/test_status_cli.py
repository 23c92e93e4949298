"""``alertline status`` against a shared PostgreSQL store: the store and its cluster members, the
password of the store's URL never shown."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

from alertline.store.postgres import PostgresStore
from tests.cli.test_cli import alertline, environment, write_config
from tests.postgres import PASSWORD, shared_server


async def test_status_lists_the_members_sharing_the_store(tmp_path: Path) -> None:
    url = shared_server().url(shared_server().new_database())
    store = PostgresStore(url)
    await store.open()
    try:
        await store.join("alpha", "host-a", 101, 30)
        await store.join("beta", "host-b", 202, 30)
    finally:
        await store.close()
    config = write_config(tmp_path, """\
        store: {url: "${PG_URL}"}
        providers: {sim: {type: simulator}}
        """)
    env = {**environment(), "PG_URL": url}
    shown = alertline(tmp_path, "status", "-c", config, "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    body = json.loads(shown.stdout)
    assert [(m["member"], m["host"], m["pid"]) for m in body["members"]] == [
        ("alpha", "host-a", 101), ("beta", "host-b", 202)]
    assert all(0 < m["expires_in"] <= 30 for m in body["members"])
    assert body["alerts_open"] == 0 and body["outbox"] == 0
    text = alertline(tmp_path, "status", "-c", config, env=env)
    assert text.returncode == 0, text.stderr
    assert "cluster: 2 member(s)" in text.stdout
    assert "alpha on host-a (pid 101): 0 open alerts, lease" in text.stdout
    for output in (shown.stdout, shown.stderr, text.stdout, text.stderr):
        assert PASSWORD not in output and quote(PASSWORD, safe="") not in output
