"""What the autowrapt entry-point groups call (``AUTOWRAPT_BOOTSTRAP=runtime,flask,…``).

Each group's single entry point hooks ``os``, which every interpreter has imported while
starting, so it runs at once; it starts the sensor (once, whatever combination of groups
is named): ``start`` makes the agent and registers every library's lazy hook from the
registry. ``spyglass.init()`` starts it the same way.

Nothing beyond what autowrapt has already loaded is imported here; packaging tools run
with the variable set are left alone.
"""
import os
import sys

# The groups AUTOWRAPT_BOOTSTRAP may name, each a function below (setup.py reads this line).
GROUPS = ("runtime", "flask", "django", "fastapi", "spyglass")

# Commands that must never be instrumented: installers, builders, environment managers.
PACKAGING_TOOLS = frozenset((
    "pip", "pip3", "setuptools", "easy_install", "virtualenv", "venv", "wheel", "build",
    "twine", "poetry", "pipenv", "pdm", "hatch", "flit", "uv", "pipx", "tox", "nox",
    "ensurepip", "conda", "mamba",
))


def is_packaging_tool(argv=None) -> bool:
    argv = list(argv if argv is not None else (getattr(sys, "orig_argv", None) or
                                               getattr(sys, "argv", None) or []))
    words = []
    for position, arg in enumerate(argv):
        if position == 0 or arg.startswith("-") and arg != "-m":
            continue
        words.append(arg)
        if len(words) >= 3:
            break
    script = os.path.basename(argv[0]) if argv else ""
    candidates = [script]
    if "-m" in argv:
        module_index = argv.index("-m") + 1
        if module_index < len(argv):
            candidates.append(argv[module_index].split(".")[0])
    elif words:
        candidates.append(os.path.basename(words[0]))
    for candidate in candidates:
        name = candidate[:-3] if candidate.endswith(".py") else candidate
        name = name.split("-")[0]
        if name.rstrip("0123456789.") in PACKAGING_TOOLS or name == "setup":
            return True
    # PEP 517 build backends run in a helper script of pip's.
    return any("pyproject_hooks" in arg or "pep517" in arg for arg in argv[:3])


def start(started_by="code", config_file=None, **settings):
    """Start the sensor once per process (the agent, then the import hooks that instrument
    each library when the app imports it); returns the agent, or None when disabled."""
    from .. import agent

    return agent.start(started_by, config_file, on_start=_instrument, **settings)


def _instrument(running):
    from .. import agent
    from ..instrument import register_hooks

    register_hooks(running)
    if running.config.trace_run:  # spyglass run --trace: the whole run, one trace
        try:
            from ..work import trace_the_run

            trace_the_run(running)
        except Exception:  # the sensor runs on without it
            import logging

            logging.getLogger("spyglass").exception("spyglass: cannot trace the whole run")
    if agent.inside_uwsgi():
        from ..instrument import uwsgi

        uwsgi.watch(running)


def _start(group):
    if is_packaging_tool():
        return
    try:
        # `spyglass run` marks the processes it starts, for the process snapshot.
        launcher = os.environ.get("SPYGLASS_LAUNCHER")
        started_by = f"{launcher} (autowrapt:{group})" if launcher else "autowrapt:" + group
        start(started_by=started_by)
    except Exception:  # the app must start whatever happens to us
        import logging

        logging.getLogger("spyglass").exception("spyglass: bootstrap failed")


def runtime(module):
    _start("runtime")


def flask(module):
    _start("flask")


def django(module):
    _start("django")


def fastapi(module):
    _start("fastapi")


def spyglass(module):
    _start("spyglass")
