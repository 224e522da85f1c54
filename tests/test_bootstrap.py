"""The autowrapt groups: the sensor starts once per process whatever groups are named,
hooks are lazy, packaging tools are left alone, spyglass.init() for those who prefer code."""
import pytest

from support.processes import run_python
from spyglass.bootstrap import is_packaging_tool


def test_every_group_installs_spyglass_as_the_opentracing_tracer():
    for group in ("runtime", "flask", "django", "fastapi", "spyglass"):
        result = run_python("import opentracing; print(type(opentracing.tracer).__module__)",
                            AUTOWRAPT_BOOTSTRAP=group)
        assert result.stdout.strip() == "spyglass.trace.tracer", group


def test_several_groups_start_one_sensor():
    result = run_python("""
        import threading, spyglass.agent
        agent = spyglass.agent.get()
        print(agent.started_by)
        print(sum(t.name == 'spyglass-reporter' for t in threading.enumerate()))
    """, AUTOWRAPT_BOOTSTRAP="runtime, flask,django,spyglass")
    started_by, threads = result.stdout.splitlines()
    assert started_by == ("['autowrapt:runtime', 'autowrapt:flask', 'autowrapt:django', "
                          "'autowrapt:spyglass']")
    assert threads == "1"


def test_hooks_are_lazy_nothing_is_imported_for_libraries_the_app_does_not_use():
    result = run_python("""
        import sys
        print(sorted(m for m in sys.modules if m.startswith('spyglass.instrument.')))
        import opentracing
        print(sorted(m for m in sys.modules if m.startswith('spyglass.instrument.')))
    """, AUTOWRAPT_BOOTSTRAP="spyglass")
    before, after = result.stdout.splitlines()
    assert "opentracing_global" not in before
    assert "spyglass.instrument.opentracing_global" in after


def test_an_apps_own_global_tracer_is_respected():
    result = run_python("""
        import opentracing
        mine = opentracing.Tracer()
        opentracing.set_global_tracer(mine)
        print(opentracing.tracer is mine)
    """, AUTOWRAPT_BOOTSTRAP="runtime")
    assert result.stdout.strip() == "True"


def test_init_from_code_and_twice():
    result = run_python("""
        import spyglass, opentracing
        first = spyglass.init(service_name="coded", sample_rate=0.25)
        second = spyglass.init()
        print(first is second, first.config.service_name, first.config.sample_rate,
              first.config.sources["sample_rate"], type(opentracing.tracer).__name__)
    """)
    assert result.stdout.split() == ["True", "coded", "0.25", "code", "Tracer"]


def test_pip_under_the_variable_is_left_alone():
    result = run_python("""
        import runpy, sys, spyglass.agent
        print(spyglass.agent.get())
    """, AUTOWRAPT_BOOTSTRAP="runtime")
    assert result.stdout.strip() != "None"
    import subprocess
    import sys

    from support.processes import clean_env

    pip = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True,
                         text=True, env=clean_env(AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_DEBUG="1"))
    assert pip.returncode == 0
    assert "started by" not in pip.stderr


@pytest.mark.parametrize("argv, expected", [
    (["/venv/bin/pip", "install", "x"], True),
    (["/venv/bin/pip3.11", "install", "x"], True),
    (["python", "-m", "pip", "install", "x"], True),
    (["python", "-m", "venv", "env"], True),
    (["python", "setup.py", "bdist_wheel"], True),
    (["/usr/bin/python3", "/venv/lib/site-packages/pip/_vendor/pyproject_hooks/_in_process/_in_process.py"], True),
    (["/venv/bin/virtualenv", "x"], True),
    (["/venv/bin/uwsgi", "--ini", "app.ini"], False),
    (["python", "manage.py", "runserver"], False),
    (["python", "app.py", "--pip"], False),
    (["python", "-c", "pass"], False),
    (["/venv/bin/gunicorn", "app:app"], False),
    ([], False),
])
def test_packaging_tool_detection(argv, expected):
    assert is_packaging_tool(argv) is expected


def test_the_tracer_built_before_the_app_imports_opentracing_is_the_global_one():
    # Building the tracer imports opentracing, whose import hook asks for the tracer.
    result = run_python("""
        import spyglass.agent
        tracer = spyglass.agent.get().tracer
        import opentracing
        print(opentracing.tracer is tracer)
    """, AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_DEBUG="1")  # debug: our errors on stderr
    assert result.stdout.strip() == "True", result.stderr
    assert "could not instrument" not in result.stderr
