"""Exceptions nothing caught (sys.excepthook, threading.excepthook, sys.unraisablehook, an
asyncio loop's exception handler): each arrives at a real OTLP receiver as an error event
with its frames, while the program's output and exit status stay byte for byte what they are
without spyglass (the same script run with and without AUTOWRAPT_BOOTSTRAP)."""
import json
import re
import subprocess
import sys
import textwrap

import pytest

from support.processes import clean_env, run_python

SCRIPTS = {
    "sys.excepthook": ("""
        def parse():
            raise ValueError("bad input 42")

        def main():
            parse()

        print("starting")
        main()
    """, "ValueError", "bad input 42", ["<module>", "main", "parse"]),

    "threading.excepthook": ("""
        import threading

        def work():
            raise KeyError("missing in thread")

        thread = threading.Thread(target=work, name="worker")
        thread.start()
        thread.join()
        print("the main thread goes on")
    """, "KeyError", "'missing in thread'", ["work"]),

    "sys.unraisablehook": ("""
        class Resource:
            def __del__(self):
                raise RuntimeError("cannot close")

        def use():
            Resource()

        use()
        print("after the finalizer")
    """, "RuntimeError", "cannot close", ["Resource.__del__"]),

    "asyncio": ("""
        import asyncio

        async def fetch():
            raise LookupError("never awaited")

        async def main():
            asyncio.get_running_loop().create_task(fetch())
            await asyncio.sleep(0.05)

        asyncio.run(main())
        print("the loop is closed")
    """, "LookupError", "never awaited", ["fetch"]),
}


def run_script(tmp_path, code, **env):
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path, env=clean_env(**env))


def without_addresses(text):
    # "Exception ignored in: <function Resource.__del__ at 0x7f…>": an address differs from
    # run to run, with or without spyglass.
    return re.sub(r" at 0x[0-9a-f]+", " at 0x…", text)


def errors(receiver):
    return [json.loads(record["body"]["stringValue"]) | {"_record": record}
            for record in receiver.log_records()
            if record["attrs"].get("event.name") == "spyglass.error"]


def assert_same_output(plain, traced):
    assert (traced.returncode, traced.stdout, without_addresses(traced.stderr)) == (
        plain.returncode, plain.stdout, without_addresses(plain.stderr))


@pytest.mark.parametrize("mechanism", SCRIPTS)
def test_an_unhandled_exception_arrives_with_its_frames_and_the_output_is_unchanged(
        tmp_path, receiver, mechanism):
    code, exc_type, message, functions = SCRIPTS[mechanism]
    plain = run_script(tmp_path, code)
    traced = run_script(tmp_path, code, AUTOWRAPT_BOOTSTRAP="runtime",
                        SPYGLASS_ENDPOINT=receiver.url, SPYGLASS_METRICS_INTERVAL="0")
    assert_same_output(plain, traced)
    assert exc_type in plain.stderr  # the hook before ours still printed the traceback
    # The process has exited: what it sent before exit has arrived.
    event, = errors(receiver)
    assert (event["type"], event["message"], event["handled"]) == (exc_type, message, False)
    assert event["mechanism"] == mechanism
    assert [frame["function"] for frame in event["frames"]][-len(functions):] == functions
    innermost = event["frames"][-1]
    assert innermost["abs_path"] == str(tmp_path / "app.py") and innermost["in_app"]
    assert innermost["context_line"].strip().startswith("raise ")
    attributes = event["_record"]["attrs"]
    assert attributes["exception.type"] == exc_type
    assert "Traceback" in attributes["exception.stacktrace"]
    assert receiver.schema_errors == []


def test_what_each_hook_knows_goes_with_the_event(tmp_path, receiver):
    for mechanism in ("threading.excepthook", "sys.unraisablehook", "asyncio"):
        run_script(tmp_path, SCRIPTS[mechanism][0], AUTOWRAPT_BOOTSTRAP="runtime",
                   SPYGLASS_ENDPOINT=receiver.url, SPYGLASS_METRICS_INTERVAL="0")
    contexts = {event["mechanism"]: event["contexts"] for event in errors(receiver)}
    assert contexts == {
        "threading.excepthook": {"thread": {"name": "worker"}},
        "sys.unraisablehook": {"unraisable": {"message": "Exception ignored in"}},
        "asyncio": {"asyncio": {"message": "Task exception was never retrieved"}},
    }


APPS_OWN_HOOKS = {
    # A hook the app installed before spyglass started (spyglass.init() in its code).
    "before": ("""
        import sys

        def report(exc_type, exc, tb):
            print("app's hook:", exc_type.__name__, exc, file=sys.stderr)

        sys.excepthook = report
        import spyglass
        spyglass.init()
        raise ValueError("after init")
    """, {}),
    # One the app installs later, calling the hook it found (spyglass's).
    "after": ("""
        import sys

        found = sys.excepthook

        def report(exc_type, exc, tb):
            print("app's hook:", exc_type.__name__, exc, file=sys.stderr)
            found(exc_type, exc, tb)

        sys.excepthook = report
        raise ValueError("after init")
    """, {"AUTOWRAPT_BOOTSTRAP": "runtime"}),
    # A loop's own handler, set by the app after spyglass patched the loop.
    "loop handler": ("""
        import asyncio, sys

        async def fetch():
            raise ValueError("after init")

        def handler(loop, context):
            print("app's handler:", context["message"], repr(context["exception"]), file=sys.stderr)

        async def main():
            asyncio.get_running_loop().set_exception_handler(handler)
            asyncio.get_running_loop().create_task(fetch())
            await asyncio.sleep(0.05)

        asyncio.run(main())
    """, {"AUTOWRAPT_BOOTSTRAP": "runtime"}),
}


@pytest.mark.parametrize("when", APPS_OWN_HOOKS)
def test_the_apps_own_hooks_still_run(tmp_path, receiver, when):
    code, env = APPS_OWN_HOOKS[when]
    plain = run_script(tmp_path, code, SPYGLASS_ENABLED="false")
    traced = run_script(tmp_path, code, SPYGLASS_ENDPOINT=receiver.url,
                        SPYGLASS_METRICS_INTERVAL="0", **env)
    assert_same_output(plain, traced)
    assert "app's" in plain.stderr
    event, = errors(receiver)
    assert (event["type"], event["message"], event["handled"]) == ("ValueError", "after init", False)


def test_reported_once_when_the_request_already_reported_it(tmp_path, receiver):
    # The exception a WSGI app raised is reported by the request; when it then escapes the
    # program, sys.excepthook does not send it again.
    code = """
        import spyglass.wsgi

        def app(environ, start_response):
            raise ValueError("from the view")

        spyglass.wsgi.middleware(app)({"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.url_scheme": "http",
                                       "SERVER_NAME": "x", "SERVER_PORT": "80"}, lambda *a: None)
    """
    result = run_script(tmp_path, code, AUTOWRAPT_BOOTSTRAP="runtime",
                        SPYGLASS_ENDPOINT=receiver.url, SPYGLASS_METRICS_INTERVAL="0")
    assert result.returncode == 1 and "ValueError: from the view" in result.stderr
    event, = errors(receiver)
    assert event["message"] == "from the view" and "mechanism" not in event


def test_capture_unhandled_false_leaves_the_hooks_alone(tmp_path, receiver):
    code = """
        import sys, threading
        print(sys.excepthook is sys.__excepthook__, sys.unraisablehook is sys.__unraisablehook__,
              threading.excepthook is threading.__excepthook__)
        raise ValueError("not reported")
    """
    result = run_script(tmp_path, code, AUTOWRAPT_BOOTSTRAP="runtime",
                        SPYGLASS_ENDPOINT=receiver.url, SPYGLASS_CAPTURE_UNHANDLED="false")
    assert result.stdout == "True True True\n" and result.returncode == 1
    assert errors(receiver) == []


def test_the_hooks_go_in_through_the_registry():
    # The loop's hook waits for asyncio to be imported (a registry hook). wrapt 2 imports
    # asyncio itself, so in practice it is there as soon as the sensor starts.
    result = run_python("""
        import json, sys, threading
        import asyncio.base_events
        import spyglass.agent
        loop = asyncio.base_events.BaseEventLoop
        print(sys.excepthook.__wrapped__ is sys.__excepthook__,
              sys.unraisablehook.__wrapped__ is sys.__unraisablehook__,
              threading.excepthook.__wrapped__ is threading.__excepthook__,
              vars(loop)["call_exception_handler"].__wrapped__.__module__)
        print(json.dumps(spyglass.agent.get().instrumented))
    """, AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT="http://127.0.0.1:9")
    hooks, instrumented = result.stdout.splitlines()
    assert hooks == "True True True asyncio.base_events"
    assert "unhandled" in json.loads(instrumented)
