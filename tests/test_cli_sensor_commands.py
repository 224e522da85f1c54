"""spyglass run / makeini / testini / check, as a user runs them."""
import os
import subprocess
import sys

from support.processes import clean_env
from support.services import free_port
from spyglass.config import KEYS, load

SPYGLASS = [sys.executable, "-c", "import sys; from spyglass.cli import main; sys.exit(main())"]


def spyglass(*args, **env):
    return subprocess.run(SPYGLASS + list(args), capture_output=True, text=True, timeout=60,
                          env=clean_env(**env))


def test_makeini_writes_every_key_at_its_default_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / "s.ini"
    first = spyglass("makeini", str(path))
    assert first.returncode == 0, first.stderr
    text = path.read_text()
    for key in KEYS:
        assert f"\n{key.ini} = " in text, key.name
    config = load(config_file=str(path), environ={})
    assert config.problems == []
    assert all(config.get(k.name) == k.default for k in KEYS if k.name != "service_name")
    second = spyglass("makeini", str(path))
    assert second.returncode != 0 and "--force" in second.stderr
    assert spyglass("makeini", "--force", str(path)).returncode == 0


def test_testini_against_a_live_receiver_succeeds(tmp_path, receiver):
    path = tmp_path / "s.ini"
    path.write_text(f"[spyglass]\nspyglass.endpoint = {receiver.url}\nspyglass.service_name = t\n")
    result = spyglass("testini", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "round trip" in result.stdout and f"[ini:{path}:2]" in result.stdout
    paths = sorted(r.path for r in receiver.requests)
    assert paths == ["/v1/logs", "/v1/metrics", "/v1/traces"]
    assert receiver.schema_errors == []


def test_testini_against_a_closed_port_says_connection_refused(tmp_path):
    path = tmp_path / "s.ini"
    path.write_text(f"[spyglass]\nspyglass.endpoint = http://127.0.0.1:{free_port()}\n")
    result = spyglass("testini", str(path))
    assert result.returncode != 0
    assert "connection refused" in result.stderr and "spyglass serve" in result.stderr


def test_testini_names_unknown_keys_and_bad_values_with_their_line(tmp_path):
    path = tmp_path / "s.ini"
    path.write_text("[spyglass]\nspyglass.sample_rate = 7\n\nspyglass.no_such = 1\n")
    result = spyglass("testini", "--no-send", str(path))
    assert result.returncode == 1
    assert f"ini:{path}:2: sample_rate: bad value '7'" in result.stdout
    assert f"ini:{path}:4: no_such: unknown key" in result.stdout


def test_testini_reports_an_http_error_with_advice(tmp_path, receiver):
    receiver.respond_next(401)
    path = tmp_path / "s.ini"
    path.write_text(f"[spyglass]\nspyglass.endpoint = {receiver.url}\n")
    result = spyglass("testini", str(path))
    assert result.returncode == 1 and "401" in result.stderr and "API key" in result.stderr


def test_check_reads_the_environment_and_flags_typos(receiver):
    result = spyglass("check", SPYGLASS_ENDPOINT=receiver.url, SPYGLASS_ENDPIONT="x",
                      SPYGLASS_HEADERS="x-api-key=secret")
    assert "SPYGLASS_ENDPIONT: unknown variable" in result.stdout
    assert "[env:SPYGLASS_ENDPOINT]" in result.stdout
    assert "secret" not in result.stdout
    assert result.returncode == 1  # the typo is a problem, though sending worked
    assert len(receiver.requests) == 3


def test_run_bootstraps_the_command(receiver):
    result = spyglass("run", "--groups", "runtime", "--", sys.executable, "-c",
                      "import spyglass.agent, opentracing; "
                      "print(spyglass.agent.get().started_by, type(opentracing.tracer).__name__)",
                      SPYGLASS_ENDPOINT=receiver.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['spyglass run (autowrapt:runtime)'] Tracer"


def test_run_explains_a_missing_command_and_a_bad_group():
    missing = spyglass("run", "--", "no-such-command-xyz")
    assert missing.returncode != 0 and "command not found: no-such-command-xyz" in missing.stderr
    bad = spyglass("run", "--groups", "flsk", "--", "true")
    assert bad.returncode != 0 and "unknown group flsk" in bad.stderr
