"""Configuration: sources and their order, OpenTelemetry fallbacks, bad values, and
Configuration.md held equal to the code's table."""
import logging
import os
import re

import pytest
from support.processes import run_python

from spyglass import config as config_module
from spyglass.config import KEYS, format_key_default, load

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def documented_rows():
    with open(os.path.join(ROOT, "Configuration.md"), encoding="utf-8") as handle:
        text = handle.read()
    table = text.split("<!-- keys:begin -->")[1].split("<!-- keys:end -->")[0]
    rows = {}
    for line in table.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name = cells[0].strip("`")
        rows[name] = [c.strip("`") for c in cells]
    return rows


def test_configuration_md_documents_every_key_exactly():
    rows = documented_rows()
    assert list(rows) == [key.name for key in KEYS]
    for key in KEYS:
        name, env, ini, type_name, default, meaning = rows[key.name]
        assert (env, ini, type_name, default) == (key.env, key.ini, key.type_name,
                                                  format_key_default(key)), key.name
        assert meaning


def test_renamed_settings_are_documented_and_read_with_one_warning(tmp_path, caplog):
    with open(os.path.join(ROOT, "Configuration.md"), encoding="utf-8") as handle:
        section = handle.read().split("## Renamed settings")[1].split("\n## ")[0]
    documented = dict(re.findall(r"^\| `([^`]+)` \| `([^`]+)` \|$", section, re.M))
    assert documented == config_module.RENAMED
    ini = tmp_path / "old.ini"
    ini.write_text("[spyglass]\nspyglass.logging.level = error\n")
    config_module._renames_warned.clear()
    with caplog.at_level(logging.WARNING, logger="spyglass"):
        first = load(config_file=str(ini), environ={})
        second = load(environ={}, **{"logging.level": "info"})
    assert first.logging_level == logging.ERROR and second.logging_level == logging.INFO
    assert first.sources["logging_level"] == f"ini:{ini}:2"
    assert [r.getMessage() for r in caplog.records] == [
        f"spyglass: the setting logging.level (from ini:{ini}:2) is now called logging_level; "
        "the old name is read for now"]
    assert load(environ={"SPYGLASS_LOGGING_LEVEL": "debug"}).logging_level == logging.DEBUG


def test_precedence_defaults_ini_env_code(tmp_path):
    ini = tmp_path / "app.ini"
    ini.write_text("[spyglass]\nspyglass.sample_rate = 0.5\nspyglass.release = from-ini\n"
                   "spyglass.environment = ini-env\nspyglass.timing.redis = false\n")
    config = load(config_file=str(ini), environ={"SPYGLASS_RELEASE": "from-env",
                                                 "SPYGLASS_ENVIRONMENT": "env-env"},
                  environment="from-code")
    assert config.sample_rate == 0.5 and config.sources["sample_rate"] == f"ini:{ini}:2"
    assert config.release == "from-env" and config.sources["release"] == "env:SPYGLASS_RELEASE"
    assert config.environment == "from-code" and config.sources["environment"] == "code"
    assert config.threshold("redis") is False
    assert config.threshold("dbapi2_psycopg2") == 0.1
    assert config.max_spans_per_trace == 1000 and config.sources["max_spans_per_trace"] == "default"


def test_ini_file_from_environment_variable(tmp_path):
    ini = tmp_path / "s.ini"
    ini.write_text("[spyglass]\nspyglass.service_name = billing\n")
    assert load(environ={"SPYGLASS_INI": str(ini)}).service_name == "billing"


def test_opentelemetry_variables_are_fallbacks_only():
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318/", "OTEL_SERVICE_NAME": "o",
           "OTEL_EXPORTER_OTLP_HEADERS": "api-key=a%20b,x=1",
           "OTEL_RESOURCE_ATTRIBUTES": "team=core"}
    config = load(environ=env)
    assert config.endpoint == "http://otel:4318"
    assert config.service_name == "o"
    assert config.headers == {"api-key": "a b", "x": "1"}
    assert config.resource_attributes == {"team": "core"}
    config = load(environ=dict(env, SPYGLASS_ENDPOINT="http://mine:4318",
                               SPYGLASS_SERVICE_NAME="mine"))
    assert config.endpoint == "http://mine:4318" and config.service_name == "mine"


@pytest.mark.parametrize("name, raw", [
    ("sample_rate", "lots"), ("sample_rate", "1.5"), ("flush_interval", "-1"),
    ("batch_size", "ten"), ("enabled", "maybe"), ("endpoint", "collector:4318"),
    ("headers", "no-equals-sign"), ("timing.redis", "slow"),
])
def test_a_bad_value_warns_once_naming_key_and_source_then_uses_default(caplog, name, raw):
    key = config_module.KEYS_BY_NAME[name]
    with caplog.at_level(logging.WARNING, logger="spyglass"):
        config = load(environ={key.env: raw})
    assert config.get(name) == key.default
    messages = [r.getMessage() for r in caplog.records if r.name == "spyglass"]
    assert len(messages) == 1
    assert name in messages[0] and key.env in messages[0]


def test_bad_values_from_code_and_unknown_ini_keys_warn(caplog, tmp_path):
    ini = tmp_path / "x.ini"
    ini.write_text("[spyglass]\nspyglass.no_such_key = 1\n")
    with caplog.at_level(logging.WARNING, logger="spyglass"):
        config = load(config_file=str(ini), environ={}, sample_rate="x")
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "no_such_key" in text and f"ini:{ini}:2" in text
    assert "sample_rate" in text and "code" in text
    assert config.sample_rate == 1.0


def test_unreadable_ini_file_warns_and_continues(caplog, tmp_path):
    with caplog.at_level(logging.WARNING, logger="spyglass"):
        config = load(config_file=str(tmp_path / "missing.ini"), environ={})
    assert config.enabled is True
    assert "missing.ini" in caplog.text


@pytest.mark.parametrize("environ, expected", [
    ({"DJANGO_SETTINGS_MODULE": "shop.settings"}, "shop"),
    ({"FLASK_APP": "api/app.py"}, "app"),
])
def test_derived_service_names(environ, expected):
    config = load(environ=environ)
    assert config.service_name == expected and config.sources["service_name"] == "derived"


def test_disabled_sensor_does_not_start(receiver):
    from support.processes import run_python

    result = run_python("""
        import opentracing, spyglass.agent
        print(spyglass.agent.get(), type(opentracing.tracer).__name__)
    """, AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENABLED="false", SPYGLASS_ENDPOINT=receiver.url)
    assert result.stdout.split() == ["None", "Tracer"]
    assert "spyglass" not in re.sub(r"\s", "", result.stderr)


def test_the_slow_call_table_lists_every_timing_key_with_its_default():
    with open(os.path.join(ROOT, "Configuration.md"), encoding="utf-8") as handle:
        section = handle.read().split("## Slow-call thresholds")[1].split("\n## ")[0]
    rows = re.findall(r"^\| `([^`]+)` \| .+ \| `([^`]+)` \| `([^`]+)` \|$", section, re.M)
    assert [name for name, _, _ in rows] == list(config_module.TIMING)
    for name, default, env in rows:
        assert float(default) == config_module.TIMING[name][0]
        assert env == "SPYGLASS_TIMING_" + name.upper()


UNKNOWN = {"SPYGLASS_SAMPLE_RTE": "SPYGLASS_SAMPLE_RATE",
           "SPYGLASS_FLUSH_INTERVALL": "SPYGLASS_FLUSH_INTERVAL",
           "SPYGLASS_ZZZ": None}  # like no setting: named without a guess


def test_an_unknown_spyglass_variable_gets_one_warning_naming_the_closest_key(tmp_path):
    ini = tmp_path / "s.ini"
    ini.write_text("[spyglass]\n")
    not_settings = {"SPYGLASS_INI": str(ini), "SPYGLASS_LAUNCHER": "spyglass run",
                    "SPYGLASS_RUN_TRACE": "1", "SPYGLASS_COLLECTOR_PORT": "4318",
                    "SPYGLASS_REQUIRE_SERVICES": "1", "SPYGLASS_TEST_REDIS": "127.0.0.1:6379",
                    "SPYGLASS_BENCH_POSTGRES_URL": "postgresql://x"}
    result = run_python("""
        import logging, spyglass
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
        spyglass.init(enabled=False)
        spyglass.init(enabled=False)  # loads the configuration again: no second warning
        print("the app goes on")
    """, **UNKNOWN.fromkeys(UNKNOWN, "1"), **not_settings)
    assert result.stdout == "the app goes on\n"
    assert result.stderr.splitlines() == [
        f"WARNING spyglass: spyglass: unknown environment variable {name} ignored"
        + (f"; did you mean {closest}?" if closest else "")
        for name, closest in sorted(UNKNOWN.items())]


def test_every_spyglass_variable_the_code_and_docs_name_is_a_setting_or_known_not_to_be():
    """A variable spyglass itself reads (or its tests, benchmarks and collector) must never
    be warned about as unknown: each is a setting's or listed in config.NOT_SETTINGS(_PREFIXES)."""
    typos = {"SPYGLASS_ENDPIONT", *UNKNOWN}  # the tests' deliberate ones
    found = set()
    for top in ("spyglass", "tests", "benchmarks", "tools", "scripts", "docs", "uwsgi_examples"):
        for folder, _, files in os.walk(os.path.join(ROOT, top)):
            for name in files:
                if name.endswith((".py", ".md", ".ini", ".sh", ".yaml", ".html")) or "." not in name:
                    with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as handle:
                        found.update(re.findall(r"\bSPYGLASS_[A-Z0-9_]*[A-Z0-9]\b", handle.read()))
    for name in ("README.md", "Configuration.md"):
        with open(os.path.join(ROOT, name), encoding="utf-8") as handle:
            found.update(re.findall(r"\bSPYGLASS_[A-Z0-9_]*[A-Z0-9]\b", handle.read()))
    assert len(found) > 40
    called_unknown = {name for name, _ in config_module.unknown_variables(dict.fromkeys(found, ""))}
    assert called_unknown == typos & found
