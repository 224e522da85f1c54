"""The service name when the user gives none, and the processes that send nothing (a
development server's reloader parent, multiprocessing's resource tracker).

``derive`` tries these rules in order; the first that knows a name wins (Configuration.md,
"How the service name is derived", lists them for users):

1. uWSGI: the app its options load (``module``, ``wsgi-file``, ``mount``, ``wsgi``,
   ``file``), else the stem of its ini (or yaml/json/xml) file, else ``uwsgi``;
2. gunicorn, uvicorn, hypercorn: the app spec's module (``app:app`` -> ``app``);
3. ``flask --app x run`` (or ``-A x``, or ``FLASK_APP``): the app's module (``x``);
4. ``celery -A proj worker`` (or beat, …): ``proj``, the app's top package;
5. ``rq worker``: ``rq`` (the jobs' module is only known per job, in its work horse);
6. ``spyglass testini FILE`` (or ``check`` with SPYGLASS_INI): the app of the ini's
   ``[uwsgi]`` section, else the ini's stem;
7. Django: the settings module's top package (``manage.py --settings``, else
   ``DJANGO_SETTINGS_MODULE``);
8. ``FLASK_APP``, in any program: the app's module;
9. the script's stem (``python job.py`` -> ``job``), ``python -m pkg`` -> ``pkg``;
10. ``python``.

The program run decides first (rules 1-6): a Celery worker of a Django project is a
service of its own, though its environment names the project's settings. The environment
(7, 8) names the app of a program that says nothing itself (a manage.py command, a script).

An app spec naming a Django project's ``wsgi``/``asgi`` module (``config.wsgi:application``,
``mysite/wsgi.py``) gives the project: ``DJANGO_SETTINGS_MODULE``'s top package when set,
else the package holding that module.

Settings given by the user (SPYGLASS_SERVICE_NAME, OTEL_SERVICE_NAME, the ini file, init())
come first: ``spyglass.config.load`` calls ``derive`` only without them. It runs at start
and once more before the first export (``Agent``): by then uWSGI has made its ``uwsgi``
module and manage.py or a wsgi.py has set ``DJANGO_SETTINGS_MODULE``.

Everything here reads the command line, the environment and ``uwsgi.opt``: no server or
framework is imported, and no file is read but for ``spyglass testini``'s ini.
"""
import os
import sys

# Interpreter options followed by a value (python -W error app.py).
_PYTHON_OPTIONS_WITH_VALUE = frozenset(("-W", "-X", "--check-hash-based-pycs"))

# Each server's options that take no value; every other option is followed by one (unless
# written --option=value). From gunicorn 23-27, uvicorn 0.3x-0.55, hypercorn 0.1x.
_SERVER_FLAGS = {
    "gunicorn": frozenset((
        "-D", "--daemon", "-R", "--enable-stdio-inheritance", "--capture-output",
        "--casefold-http-method", "--check-config", "--disable-redirect-access-to-syslog",
        "--do-handshake-on-connect", "--enable-backlog-metric", "--initgroups", "--log-syslog",
        "--no-control-socket", "--no-sendfile", "--permit-obsolete-folding",
        "--permit-unconventional-http-method", "--permit-unconventional-http-version",
        "--preload", "--print-config", "--reload", "--reuse-port", "--spew",
        "--strip-header-spaces", "--suppress-ragged-eofs", "-v", "--version", "-h", "--help")),
    "uvicorn": frozenset((
        "--reload", "--factory", "--http2", "--access-log", "--no-access-log", "--date-header",
        "--no-date-header", "--proxy-headers", "--no-proxy-headers", "--server-header",
        "--no-server-header", "--use-colors", "--no-use-colors", "--reset-contextvars",
        "--version", "--help")),
    "hypercorn": frozenset(("--debug", "--reload", "-h", "--help")),
}

# A Django project's entry modules (startproject's layout): the project names the service.
_DJANGO_ENTRY_MODULES = ("wsgi", "asgi")


def derive(program, args, environ, uwsgi_options=None) -> str:
    """The service name for ``program`` run with ``args`` (see ``command_line``), the
    environment ``environ`` and, inside uWSGI, its options: the first rule's answer."""
    for rule in (_uwsgi, _python_server, _flask, _celery, _rq, _testini, _django, _flask_app,
                 _script):
        name = rule(program, args, environ, uwsgi_options)
        if name:
            return name
    return "python"


def derived(environ=None) -> str:
    """``derive`` for this process, now."""
    program, args = command_line()
    uwsgi = sys.modules.get("uwsgi")
    options = getattr(uwsgi, "opt", None) if uwsgi is not None else None
    return derive(program, args, os.environ if environ is None else environ, options)


def command_line(orig_argv=None, argv=None):
    """(program, arguments) of this process: the script's path, or ``-m``'s module, or ""
    (``-c``, stdin, an embedding server such as uWSGI), and what follows it.

    Read from ``sys.orig_argv`` (Python 3.10+), which holds the full command line even while
    ``sys.argv`` is still ``['-m']`` at start; for ``-c`` (or with no command line), from
    ``sys.argv`` once something has set it: multiprocessing's spawn gives a child (uvicorn's
    workers, a pool's) its parent's by the time it first exports."""
    if orig_argv is None:
        orig_argv = getattr(sys, "orig_argv", None)
    if orig_argv:
        program, args = _interpreter_command([str(arg) for arg in orig_argv[1:]])
        if program:
            return program, args
    argv = [str(arg) for arg in (getattr(sys, "argv", None) if argv is None else argv) or []]
    if not argv or argv[0] in ("", "-c", "-m", "-"):
        return "", argv[1:]
    return argv[0], argv[1:]


def _interpreter_command(args):
    """(program, arguments) from the interpreter's arguments: past its own options, the
    script or ``-m``'s module; ("", …) for ``-c`` and stdin."""
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "-m":
            return (args[index + 1], args[index + 2:]) if index + 1 < len(args) else ("", [])
        if arg.startswith("-m"):
            return arg[2:], args[index + 1:]
        if arg.startswith("-c") or arg == "-":
            return "", args[index + 1:]
        if arg in _PYTHON_OPTIONS_WITH_VALUE:
            index += 2
        elif arg.startswith("-"):
            index += 1
        else:
            return arg, args[index + 1:]
    return "", []


def program_name(program) -> str:
    """What a person calls the program: ``/venv/bin/gunicorn`` -> ``gunicorn``,
    ``job.py`` -> ``job``, ``celery.__main__`` (``-m``) -> ``celery``."""
    base = os.path.basename(program.rstrip("/"))
    if base.endswith(".py"):
        base = base[:-3]
    if base == "__main__":  # python path/to/pkg/__main__.py, or python -m pkg.__main__
        base = os.path.basename(os.path.dirname(program)) if os.sep in program else program
    return base[:-len(".__main__")] if base.endswith(".__main__") else base


def app_name(spec, environ) -> str:
    """The service an app spec names: its module (``shop.web:app`` -> ``shop.web``,
    ``app:create_app()`` -> ``app``, ``src/app.py`` -> ``app``); a Django project's
    wsgi/asgi module -> the project."""
    if isinstance(spec, (bytes, bytearray)):
        spec = spec.decode("utf-8", "replace")
    module = str(spec).strip().split(":")[0]
    if module.endswith(".py") or "/" in module:  # a file: its stem, or mysite/wsgi.py's project
        parent, stem = os.path.split(module[:-3] if module.endswith(".py") else module)
        if stem not in _DJANGO_ENTRY_MODULES:
            return stem
        module = f"{os.path.basename(parent)}.{stem}" if parent else stem
    package, _, last = module.rpartition(".")
    if last in _DJANGO_ENTRY_MODULES:
        settings = environ.get("DJANGO_SETTINGS_MODULE")
        if settings:
            return settings.split(".")[0]
        return package.split(".")[0] or module
    return module


# -- the rules, in order: each returns a name or "" ---------------------------------------------

def _uwsgi(program, args, environ, options):
    if options is None:
        return ""
    app = _uwsgi_app(options, environ)
    if app:
        return app
    for key in ("ini", "yaml", "yml", "json", "xml"):
        value = _uwsgi_option(options, key)
        if value:
            return _file_stem(value.split(":")[0])
    return "uwsgi"


def _uwsgi_app(options, environ) -> str:
    for key in ("module", "wsgi-file", "mount", "wsgi", "file"):
        value = _uwsgi_option(options, key)
        if value:
            # mount = /mountpoint=app: the app after the first "="
            return app_name(value.partition("=")[2] if key == "mount" else value, environ)
    return ""


def _uwsgi_option(options, key) -> str:
    """One option's text (the first, when given more than once), or ""."""
    value = options.get(key) or options.get(key.encode())
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) else ""


def _python_server(program, args, environ, options):
    flags = _SERVER_FLAGS.get(program_name(program))
    if flags is None:
        return ""
    spec = _first_positional(args, flags)
    return app_name(spec, environ) if spec else ""


def _first_positional(args, flags) -> str:
    """The first argument that is neither an option nor an option's value; failing that
    (an option we do not know took it), the last argument that looks like an app spec."""
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            return args[index + 1] if index + 1 < len(args) else ""
        if not arg.startswith("-") or arg == "-":
            return arg
        index += 1 if arg in flags or "=" in arg or (
            arg[1:2] != "-" and len(arg) > 2) else 2  # -b:80 carries its value
    for arg in reversed(args):
        if not arg.startswith("-") and _looks_like_spec(arg):
            return arg
    return ""


def _looks_like_spec(arg) -> bool:
    module = arg.split(":")[0]
    return bool(module) and all(part.isidentifier() for part in module.split("."))


def _flask(program, args, environ, options):
    if program_name(program) != "flask":
        return ""
    app = _option_value(args, "-A", "--app") or environ.get("FLASK_APP")
    if app:
        return app_name(app, environ)
    # Flask's own discovery: wsgi.py, else app.py, in the working directory.
    for candidate in ("wsgi", "app"):
        if os.path.isfile(candidate + ".py"):
            return candidate
    return ""


def _flask_app(program, args, environ, options):
    app = environ.get("FLASK_APP")
    return app_name(app, environ) if app else ""


def _django(program, args, environ, options):
    settings = ""
    if program_name(program) in ("manage", "django-admin", "django"):
        settings = _option_value(args, None, "--settings")
    settings = settings or environ.get("DJANGO_SETTINGS_MODULE")
    return settings.split(".")[0] if settings else ""


def _celery(program, args, environ, options):
    """``celery -A proj worker`` (or beat, or ``python -m celery``) -> ``proj``."""
    if program_name(program) != "celery":
        return ""
    app = _option_value(args, "-A", "--app")
    return (app.split(":")[0].split(".")[0] if app else "") or "celery"


def _rq(program, args, environ, options):
    return "rq" if program_name(program) in ("rq", "rq.cli", "rqworker") else ""


def _testini(program, args, environ, options):
    """``spyglass testini FILE`` (and ``spyglass check`` with SPYGLASS_INI) send as the app
    that the ini file configures would."""
    if program_name(program) not in ("spyglass", "spyglass.cli"):
        return ""
    if args[:1] == ["testini"]:
        path = _first_positional(args[1:], frozenset(("--no-send", "-h", "--help")))
    elif args[:1] == ["check"]:
        path = environ.get("SPYGLASS_INI")
    else:
        return ""
    return (_uwsgi_app_in_ini(path, environ) or _file_stem(path)) if path else ""


def _uwsgi_app_in_ini(path, environ) -> str:
    import configparser  # spyglass testini only

    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read(path, encoding="utf-8")
        if not parser.has_section("uwsgi"):
            return ""
        return _uwsgi_app(dict(parser.items("uwsgi")), environ)
    except (configparser.Error, OSError, UnicodeDecodeError):
        return ""


def _script(program, args, environ, options):
    return program_name(program) if program else ""


def _option_value(args, short, long) -> str:
    """The value of ``-A x``, ``-Ax``, ``--app x`` or ``--app=x`` anywhere in ``args``."""
    for index, arg in enumerate(args):
        if arg in (short, long) and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(long + "="):
            return arg[len(long) + 1:]
        if short and arg.startswith(short) and len(arg) > len(short):
            return arg[len(short):].lstrip("=")
    return ""


def _file_stem(path) -> str:
    base = os.path.basename(path)
    return base.rpartition(".")[0] or base


# -- processes that send nothing ----------------------------------------------------------------

def sends_nothing(environ=None) -> bool:
    """A helper process that only serves the app's own processes, where the sensor stays
    off: a development server's reloader parent, multiprocessing's resource tracker."""
    return is_reloader_parent(environ) or is_resource_tracker()


def is_resource_tracker(orig_argv=None) -> bool:
    """multiprocessing's resource tracker (``python -c 'from multiprocessing.resource_tracker
    import main; …'``), which a program using spawn or shared memory starts beside itself."""
    orig_argv = getattr(sys, "orig_argv", None) if orig_argv is None else orig_argv
    for index, arg in enumerate(orig_argv or []):
        if arg == "-c":
            code = orig_argv[index + 1] if index + 1 < len(orig_argv) else ""
            return code.startswith("from multiprocessing.resource_tracker import")
    return False


def is_reloader_parent(environ=None) -> bool:
    """True in the process of ``manage.py runserver``, ``flask run --debug``/``--reload`` or
    ``uvicorn --reload`` that only watches files and restarts its child: the child
    (RUN_MAIN / WERKZEUG_RUN_MAIN=true in its environment; uvicorn's, spawned by
    multiprocessing) serves the app and has the sensor, so the parent sends nothing of its
    own. Decided at start, from the command line: a spawned child's is ``-c`` then."""
    environ = os.environ if environ is None else environ
    program, args = command_line()
    name = program_name(program)
    if name in ("manage", "django-admin", "django"):
        return (_subcommand(args) == "runserver" and "--noreload" not in args
                and environ.get("RUN_MAIN") != "true")
    if name == "uvicorn":  # its reloader spawns the server (multiprocessing: ``-c`` there)
        return "--reload" in args
    if name == "flask":
        if _subcommand(args, ("-A", "--app", "-e", "--env-file")) != "run" or \
                environ.get("WERKZEUG_RUN_MAIN") == "true":
            return False
        if "--no-reload" in args:
            return False
        debug = environ.get("FLASK_DEBUG", "").lower() not in ("", "0", "false", "no")
        return "--reload" in args or ("--debug" in args or debug) and "--no-debug" not in args
    return False


def _subcommand(args, options_with_value=("--settings", "--pythonpath")) -> str:
    index = 0
    while index < len(args):
        arg = args[index]
        if not arg.startswith("-"):
            return arg
        index += 2 if arg in options_with_value else 1
    return ""
