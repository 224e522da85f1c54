"""The DB-API 2.0 compliance suite (tests/support/dbapi20_suite.py, after Stuart Bishop's
dbapi20.py) gives the same outcome for every check with and without spyglass, for each
driver, against the real databases; the traced run does produce spans."""
import json
import os
import subprocess
import sys

import pytest

from support.processes import clean_env
from support.services import MYSQL, POSTGRES, require, require_tcp

SUITE = os.path.join(os.path.dirname(__file__), "support", "dbapi20_suite.py")

DRIVERS = {
    # name: (pip-installed module to import, service, extra environment for the traced run)
    "sqlite3": ("sqlite3", None, {}),
    "psycopg2": ("psycopg2", POSTGRES, {}),
    "psycopg": ("psycopg", POSTGRES, {}),
    "pymysql": ("pymysql", MYSQL, {}),
    "MySQLdb": ("MySQLdb", MYSQL, {}),
    # The generic PEP 249 hook (proxies): on pg8000, a pure-Python driver the registry does
    # not know, as AppEnlight's client did; and on sqlite3 under another module name.
    "pg8000": ("pg8000", POSTGRES, {"SPYGLASS_DBAPI2_MODULES": "pg8000"}),
    "sqlite3.dbapi2": ("sqlite3", None, {"SPYGLASS_DBAPI2_MODULES": "sqlite3.dbapi2",
                                         "SPYGLASS_TIMING_DBAPI2_SQLITE3": "false"}),
}


def run_suite(name, receiver=None, **env):
    args = [sys.executable, SUITE, name] + (["traced"] if receiver else [])
    if receiver:
        env.update(AUTOWRAPT_BOOTSTRAP="spyglass", SPYGLASS_ENDPOINT=receiver.url,
                   SPYGLASS_METRICS_INTERVAL="0", SPYGLASS_DEBUG="1")  # our errors on stderr
    result = subprocess.run(args, env=clean_env(**env), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"could not instrument {name};" not in result.stderr, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_the_suite_passes_identically_with_and_without_instrumentation(name, receiver):
    module, service, extra = DRIVERS[name]
    try:
        __import__(module)
    except ImportError:
        require(False, f"{module} is not installed")
    if service:
        require_tcp(*service)
    plain = run_suite(name)
    traced = run_suite(name, receiver, **extra)
    assert traced == plain
    # What the driver itself fails is its own business; the suite runs against it.
    assert sum(outcome.startswith("ok") for outcome in plain.values()) >= len(plain) - 2
    spans = receiver.wait_for(lambda r: len(r.spans()) > 20 and r.spans())
    calls = [s for s in spans if s["attrs"].get("spyglass.category") == "sql"]
    assert len(calls) > 20
    systems = {s["attrs"]["db.system"] for s in calls}
    assert systems == {"sqlite" if name.startswith("sqlite") else
                       "postgresql" if "psycopg" in name or name == "pg8000" else "mysql"}
