"""Every instrumentation patches what it declares, no more, and ``uninstall()`` gives every
library back its very own objects.

A fresh interpreter imports every library the registry names, records every attribute of
every module and class of those libraries, starts the sensor (its import hooks patch), and
records them again; then ``spyglass.instrument.uninstall()``, and once more. uWSGI's module
exists only inside uWSGI: its row runs there (``uwsgi --master --pyrun``).

What is no attribute is looked for too, by the instrumentation that adds it: Celery's signal
receivers, multiprocessing's after-fork callbacks and finalizers (one made as a pool's
worker makes it when it starts).
"""
import importlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from support.processes import clean_env, run_python
from support.services import require

PROGRAM = r"""
import importlib, json, os, sys, types, weakref

from spyglass import instrument
from spyglass.instrument import _patch

names = json.loads(os.environ["PATCH_CHECK"])
registry = {**instrument.REGISTRY, **instrument.UNHANDLED}
triggers = {module: name for module, name in registry.items() if name in names}
if "dbapi2_generic" in names:  # a driver spyglass knows nothing of: sqlite3's own connect
    import sqlite3

    driver = types.ModuleType("acme_sql")
    driver.connect = sqlite3.connect
    sys.modules["acme_sql"] = driver
    triggers["acme_sql"] = "dbapi2_generic"
if "uwsgi" in names:  # made by uWSGI, imported by nothing: spyglass watches for it
    triggers["uwsgi"] = "uwsgi"
for module_name in triggers:
    importlib.import_module(module_name)
tops = {module_name.split(".")[0] for module_name in triggers}


def label(holder, attribute):
    if isinstance(holder, types.ModuleType):
        return f"{holder.__name__}.{attribute}"
    return f"{holder.__module__}.{holder.__qualname__}.{attribute}"


def declared():
    found = {}
    for module_name, name in triggers.items():
        code = importlib.import_module(f"spyglass.instrument.{name}")
        module = sys.modules[module_name]
        for patch in code.PATCHES:
            if patch.module in (module_name, None):
                holder = _patch.resolve(module, patch.holder)
                for attribute in patch.attributes:
                    if patch.inherited or attribute in vars(holder):
                        found.setdefault(name, set()).add(label(holder, attribute))
    return {name: sorted(labels) for name, labels in found.items()}


def holders():
    for module_name, module in list(sys.modules.items()):
        if module is None or module_name.split(".")[0] not in tops:
            continue
        yield module
        for value in list(vars(module).values()):
            if issubclass(type(value), type) and value.__module__ == module_name:
                yield value


def snapshot():
    return {id(holder): (holder, dict(vars(holder))) for holder in holders()}


def differences(before):
    # What is not as it was: changed, or added (a submodule imported since does not count).
    found = set()
    for key, (holder, namespace) in before.items():
        current = vars(holder)
        for attribute, value in namespace.items():
            if current.get(attribute, namespace) is not value:
                found.add(label(holder, attribute))
        for attribute, value in current.items():
            if attribute not in namespace and not isinstance(value, types.ModuleType):
                found.add(label(holder, attribute))
    return found


def spyglass_made(function):
    function = getattr(function, "func", function)  # a functools.partial
    return getattr(function, "__module__", "").startswith("spyglass")


def hooks():
    # What spyglass added through a library's own hooks, by instrumentation.
    found = {}
    if "celery" in names:
        from celery.utils.dispatch.signal import Signal
        from celery import signals

        for signal_name, signal in vars(signals).items():
            if isinstance(signal, Signal):
                for _, receiver in signal.receivers:
                    receiver = receiver() if isinstance(receiver, weakref.ref) else receiver
                    if spyglass_made(receiver):
                        found.setdefault("celery", []).append(f"{signal_name}: {receiver}")
    if "multiprocessing" in names:
        from multiprocessing import util

        for (_, _, callback), obj in list(util._afterfork_registry.items()):
            if spyglass_made(callback):
                found.setdefault("multiprocessing", []).append(f"after fork: {callback}")
        for finalizer in list(util._finalizer_registry.values()):
            if spyglass_made(getattr(finalizer, "_callback", None)):
                found.setdefault("multiprocessing", []).append(f"finalizer: {finalizer}")
    return found


def start_a_pool_worker():
    # What a pool's worker does as it starts (multiprocessing.util._run_after_forkers), for
    # spyglass's callback alone: it adds a finalizer.
    if "multiprocessing" in names:
        from multiprocessing import util

        for (_, _, callback), obj in list(util._afterfork_registry.items()):
            if spyglass_made(callback):
                callback(obj)


expected = declared()
before = snapshot()
import spyglass

agent = spyglass.init(service_name="patch-check", endpoint="http://127.0.0.1:9",
                      metrics_interval=0, shutdown_timeout=0.1, dbapi2_modules="acme_sql")
by = {label(applied.holder, applied.name): applied.instrumentation.rsplit(".", 1)[-1]
      for applied in _patch.applied()}
patched = {name: by.get(name) for name in differences(before)}
instrumented = list(agent.instrumented)
start_a_pool_worker()
added = hooks()
instrument.uninstall()
assert agent.instrumented == []
print(json.dumps({"declared": expected, "patched": patched, "instrumented": instrumented,
                  "not_restored": sorted(differences(before)), "hooks": added,
                  "hooks_left": hooks()}))
"""

REGISTRY = {**__import__("spyglass.instrument").instrument.REGISTRY,
            **__import__("spyglass.instrument").instrument.UNHANDLED}
INSTRUMENTATIONS = sorted(set(REGISTRY.values()) | {"dbapi2_generic"})
IN_PYTHON = [name for name in INSTRUMENTATIONS if name != "uwsgi"]
# How many hooks each instrumentation adds beyond attributes: Celery's six signal receivers;
# multiprocessing's after-fork callback, and the finalizer it adds in a starting worker.
HOOKED = {"celery": 6, "multiprocessing": 2}


@pytest.fixture(scope="module")
def in_python():
    result = run_python(PROGRAM, timeout=120, PATCH_CHECK=json.dumps(IN_PYTHON))
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def in_uwsgi(tmp_path_factory):
    uwsgi = shutil.which("uwsgi", path=os.path.dirname(sys.executable))
    require(uwsgi is not None, "uWSGI is not installed in this virtualenv")
    program = tmp_path_factory.mktemp("patches") / "check.py"
    program.write_text("import uwsgidecorators  # imported before the sensor starts\n" + PROGRAM)
    result = subprocess.run([uwsgi, "--master", "--enable-threads", "--pyrun", str(program)],
                            env=clean_env(PATCH_CHECK=json.dumps(["uwsgi"])),
                            capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr  # uWSGI logs what the program prints
    lines = [line for line in output.splitlines() if line.startswith("{")]
    assert lines, output
    return json.loads(lines[-1])


@pytest.mark.parametrize("name", INSTRUMENTATIONS)
def test_patches_what_it_declares_and_uninstall_restores_the_originals(name, request):
    found = request.getfixturevalue("in_uwsgi" if name == "uwsgi" else "in_python")
    declared = found["declared"].get(name, [])
    if importlib.import_module(f"spyglass.instrument.{name}").PATCHES:
        assert declared, f"{name} declares nothing this version of its library has"
    tops = {module.split(".")[0] for module, by in REGISTRY.items() if by == name} | {
        label.split(".")[0] for label in declared}
    mine = sorted(label for label, by in found["patched"].items()
                  if by == name or by is None and label.split(".")[0] in tops)
    assert mine == declared
    assert any(name == done or name == "dbapi2_generic" and done == "acme_sql"
               for done in found["instrumented"])
    assert [label for label in found["not_restored"] if label.split(".")[0] in tops] == []
    if name in HOOKED:
        assert len(found["hooks"].get(name, [])) == HOOKED[name], found["hooks"]
    assert found["hooks_left"].get(name) is None


def test_a_library_outside_the_supported_versions_is_left_alone_with_one_line():
    result = run_python("""
        import logging, sys
        logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
        from spyglass.instrument import _patch, redis as declaration
        declaration.SUPPORTS = _patch.Supports("redis", "99.0")
        import spyglass
        spyglass.init(service_name="old", endpoint="http://127.0.0.1:9", metrics_interval=0)
        import redis
        redis.asyncio.client  # a second module of the same library: no second line
        print("patched:", [a.name for a in _patch.applied("spyglass.instrument.redis")])
    """)
    # Past a second (a loaded machine), the first export's failure says so too: not ours here.
    lines = [line for line in result.stdout.splitlines() if "cannot export" not in line]
    assert len(lines) == 2, result.stdout
    assert "is not a version spyglass supports (redis >= 99.0)" in lines[0]
    assert lines[1] == "patched: []"
    assert "Traceback" not in result.stdout + result.stderr


def test_a_second_install_patches_nothing_twice():
    result = run_python("""
        import sqlite3
        import spyglass
        from spyglass import agent as agent_module
        from spyglass.instrument import install, _patch
        agent = spyglass.init(service_name="twice", endpoint="http://127.0.0.1:9",
                              metrics_interval=0)
        first = sqlite3.connect
        install(agent, sqlite3, "sqlite3")
        assert sqlite3.connect is first
        assert sqlite3.connect.__wrapped__ is not None
        assert not hasattr(sqlite3.connect.__wrapped__, "__wrapped__")
        print(len(_patch.applied("spyglass.instrument.sqlite3")))
    """)
    assert result.stdout.split() == ["2"]
