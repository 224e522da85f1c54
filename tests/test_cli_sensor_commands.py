"""spyglass run / makeini / testini / check, as a user runs them."""
import os
import subprocess
import sys

from support.processes import clean_env
from support.services import free_port
from spyglass import __version__
from spyglass.config import KEYS, format_key_default, load

SPYGLASS = [sys.executable, "-c", "import sys; from spyglass.cli import main; sys.exit(main())"]


def spyglass(*args, **env):
    return subprocess.run(SPYGLASS + list(args), capture_output=True, text=True, timeout=60,
                          env=clean_env(**env))


def test_makeini_writes_every_key_commented_out_at_its_default_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / "s.ini"
    first = spyglass("makeini", str(path))
    assert first.returncode == 0, first.stderr
    text = path.read_text()
    for key in KEYS:
        assert f"\n; {key.ini} = {format_key_default(key)}\n" in text, key.name
    assert "\n; spyglass.logging_level = WARNING\n" in text
    config = load(config_file=str(path), environ={})
    assert config.problems == []
    assert set(config.sources.values()) == {"default", "derived"}  # nothing set by the file
    second = spyglass("makeini", str(path))
    assert second.returncode != 0 and "--force" in second.stderr
    assert spyglass("makeini", "--force", str(path)).returncode == 0


def test_a_made_ini_leaves_the_environment_and_otel_variables_in_charge_but_what_is_uncommented(
        tmp_path, receiver):
    path = tmp_path / "s.ini"
    assert spyglass("makeini", str(path)).returncode == 0
    path.write_text(path.read_text().replace("; spyglass.release = \n", "spyglass.release = 2.1\n"))
    result = spyglass("run", "--groups", "runtime", sys.executable, "-c",
                      "import spyglass.agent as a; c = a.get().config; "
                      "print(c.service_name, c.endpoint, c.release, c.sample_rate)",
                      SPYGLASS_INI=str(path), OTEL_SERVICE_NAME="billing",
                      OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, SPYGLASS_SAMPLE_RATE="0.5")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["billing", receiver.url, "2.1", "0.5"]


def test_version():
    result = spyglass("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"spyglass {__version__}"


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
                      SPYGLASS_HEADERS="x-api-key=secret", SPYGLASS_REQUIRE_SERVICES="1",
                      SPYGLASS_LOGGING_LEVEL="error")
    assert "env:SPYGLASS_ENDPIONT: unknown variable, ignored; did you mean SPYGLASS_ENDPOINT?" \
        in result.stdout
    assert "1 problem(s)" in result.stdout  # SPYGLASS_REQUIRE_SERVICES is the tests', not a typo
    assert "[env:SPYGLASS_ENDPOINT]" in result.stdout
    levels = result.stdout.split("logging_level", 1)[1].split()[:2]
    assert levels == ["ERROR", "[env:SPYGLASS_LOGGING_LEVEL]"]  # by name, not 40
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


def test_run_needs_no_double_dash_even_when_the_command_has_options(receiver):
    result = spyglass("run", "--groups", "runtime", sys.executable, "-W", "error", "-c",
                      "import sys, spyglass.agent; print(sys.argv[1:], spyglass.agent.get().started_by)",
                      "--flag", "-x", SPYGLASS_ENDPOINT=receiver.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['--flag', '-x'] ['spyglass run (autowrapt:runtime)']"


def test_run_explains_a_missing_command_and_a_bad_group():
    missing = spyglass("run", "--", "no-such-command-xyz")
    assert missing.returncode != 0 and "command not found: no-such-command-xyz" in missing.stderr
    nothing = spyglass("run")
    assert nothing.returncode == 2 and "give the command to run" in nothing.stderr
    bad = spyglass("run", "--groups", "flsk", "--", "true")
    assert bad.returncode != 0 and "unknown group flsk" in bad.stderr
