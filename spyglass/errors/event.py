"""Exception -> error event: a plain, JSON-ready dict (see docs/Telemetry.md).

The builder reads an exception the way ``traceback`` does -- frames, source
lines, the cause/context chain, ExceptionGroup members -- plus, on request,
the reprs of each frame's locals. It holds no frame after it returns, calls
nothing on the app's objects but ``str()`` on exceptions and ``repr()`` on
locals, and never raises: if anything goes wrong inside, the event shrinks
to the exception's type and message.
"""

from __future__ import annotations

import builtins
import linecache
import os
import reprlib
import sys
import time
from collections.abc import Sequence
from itertools import islice
from types import FrameType

from ..redact.scrub import FILTERED, Scrubber
from ..redact.stacktrace import DEFAULT_SCRUBBER, format_stacktrace

__all__ = ["build_error_event", "fingerprint_of", "format_stacktrace", "in_app"]

MAX_MESSAGE = 8 * 1024
MAX_CHAIN = 10            # causes/contexts followed from one exception
MAX_GROUP_DEPTH = 5       # ExceptionGroups nested in ExceptionGroups
MAX_GROUP_MEMBERS = 20    # members kept per group
MAX_EXCEPTIONS = 50       # exceptions described in one event, all kinds
MAX_VARS = 50             # locals per frame
MAX_REPR = 256            # characters per local's repr
MAX_LINE = 512            # characters per source line
SCRUB_LINES_ABOVE = 5     # source lines read above the context, for its redaction only
DEFAULT_TEMPLATE = "{{ default }}"
UNREPRESENTABLE = "<unrepresentable>"

# Python 3.9/3.10 have no ExceptionGroup.
_BaseExceptionGroup = getattr(builtins, "BaseExceptionGroup", None)
_LIBRARY_DIRS = ("site-packages", "dist-packages")
_STDLIB_NAMES = frozenset(getattr(sys, "stdlib_module_names", ()))
_STDLIB_DIR = os.path.dirname(os.__file__) + os.sep
_SPYGLASS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


# --- public API -------------------------------------------------------------

def build_error_event(exc: BaseException, *, handled: bool = False, level: str = "error",
                      report_local_vars: bool = False, context_lines: int = 5,
                      in_app_include: Sequence[str] = (), in_app_exclude: Sequence[str] = (),
                      scrubber: Scrubber | None = None, max_frames: int = 100,
                      fingerprint: Sequence[str] | None = None) -> dict:
    """The error event for ``exc``: JSON-ready, scrubbed, never raising.

    ``fingerprint`` overrides the grouping key; an item ``"{{ default }}"``
    stands for the default parts (Sentry's convention).
    """
    try:
        builder = _EventBuilder(
            report_local_vars=report_local_vars, context_lines=max(0, int(context_lines)),
            in_app_include=_prefixes(in_app_include), in_app_exclude=_prefixes(in_app_exclude),
            scrubber=scrubber or DEFAULT_SCRUBBER, max_frames=max(2, int(max_frames)))
        event = builder.describe(exc, with_chain=True)
        event.setdefault("chain", [])
        event.setdefault("group", [])
        event.update(handled=bool(handled), level=str(level), timestamp=time.time())
        event["fingerprint"] = fingerprint_of(event, custom=fingerprint)
        return event
    except Exception:
        return _minimal_event(exc, handled, level, scrubber or DEFAULT_SCRUBBER)


def fingerprint_of(event: dict, *, custom: Sequence[str] | None = None) -> str:
    """A stable hex digest grouping events of the same error at the same place.

    Default parts: the exception's module-qualified type, then the
    ``module:function`` of each in-app frame (of every frame when none is in
    app). Line numbers are left out so edits elsewhere in a file keep the group.
    """
    import hashlib  # lazily: it loads OpenSSL

    parts = _default_fingerprint_parts(event)
    if custom:
        parts = [part for item in custom
                 for part in (parts if str(item) == DEFAULT_TEMPLATE else [str(item)])]
    digest = hashlib.sha256("\n".join(parts).encode("utf-8", "replace"))
    return digest.hexdigest()[:32]


def in_app(module: str | None, abs_path: str | None,
           include: Sequence[str] = (), exclude: Sequence[str] = ()) -> bool:
    """Is this frame the app's own code?

    ``include``/``exclude`` are module prefixes and win (include first).
    Otherwise the stdlib, installed libraries (site-/dist-packages) and
    spyglass itself are not the app; everything else is.
    """
    if module and _has_prefix(module, include):
        return True
    if module and _has_prefix(module, exclude):
        return False
    if module and (module.partition(".")[0] in _STDLIB_NAMES or _has_prefix(module, ("spyglass",))):
        return False
    if abs_path:
        if abs_path.startswith("<frozen ") or _library_relative(abs_path) is not None:
            return False
        if abs_path.startswith(_STDLIB_DIR) or abs_path.startswith(_SPYGLASS_DIR):
            return False
    return True


# --- the builder ------------------------------------------------------------

class _EventBuilder:
    """Options plus the event-wide budget; lives for one build_error_event call."""

    def __init__(self, *, report_local_vars: bool, context_lines: int,
                 in_app_include: tuple, in_app_exclude: tuple,
                 scrubber: Scrubber, max_frames: int):
        self.report_local_vars = report_local_vars
        self.context_lines = context_lines
        self.include, self.exclude = in_app_include, in_app_exclude
        self.scrubber = scrubber
        self.max_frames = max_frames
        self.seen: set[int] = set()
        self.budget = MAX_EXCEPTIONS
        self.repr = _SafeRepr()

    def describe(self, exc: BaseException, *, with_chain: bool, group_depth: int = 0) -> dict:
        """type/module/message/frames, plus chain and group where there are any."""
        self.seen.add(id(exc))
        self.budget -= 1
        entry = {
            "type": _type_name(exc),
            "module": _type_module(exc),
            "message": self.scrubber.text(_safe_message(exc)),
            "frames": self.frames(exc.__traceback__),
        }
        if with_chain:
            chain = self.chain(exc, group_depth)
            if chain:
                entry["chain"] = chain
        if _BaseExceptionGroup is not None and isinstance(exc, _BaseExceptionGroup):
            entry["group"] = self.group(exc, group_depth + 1)
        return entry

    def chain(self, exc: BaseException, group_depth: int) -> list[dict]:
        """The causes/contexts traceback would print, nearest first."""
        links = []
        for relation, linked in islice(_linked_exceptions(exc), MAX_CHAIN):
            if id(linked) in self.seen or self.budget <= 0:
                break
            link = {"relation": relation}
            link.update(self.describe(linked, with_chain=False, group_depth=group_depth))
            links.append(link)
        return links

    def group(self, group: BaseException, depth: int) -> list[dict]:
        if depth > MAX_GROUP_DEPTH:
            return []
        members = []
        for member in islice(getattr(group, "exceptions", ()), MAX_GROUP_MEMBERS):
            if isinstance(member, BaseException) and id(member) not in self.seen and self.budget > 0:
                members.append(self.describe(member, with_chain=True, group_depth=depth))
        return members

    def frames(self, tb) -> list[dict]:
        entries = []
        while tb is not None:
            entries.append((tb.tb_frame, tb.tb_lineno))
            tb = tb.tb_next
        # Keep the outermost and innermost frames: where it entered, where it broke.
        if len(entries) > self.max_frames:
            head = self.max_frames // 2
            entries = entries[:head] + entries[len(entries) - (self.max_frames - head):]
        try:
            checked: set[str] = set()
            running = _running_frame_ids() if self.report_local_vars else frozenset()
            return [self.frame(frame, lineno, checked, id(frame) in running)
                    for frame, lineno in entries]
        finally:
            entries.clear()  # drop frame references promptly, even on error

    def frame(self, frame: FrameType, lineno: int | None, checked: set[str],
              running: bool) -> dict:
        code = frame.f_code
        raw_path = code.co_filename
        module = _frame_module(frame)
        abs_path = _absolute(raw_path)
        result = {
            "filename": _short_filename(abs_path, module),
            "abs_path": abs_path,
            "module": module,
            "function": getattr(code, "co_qualname", code.co_name),
            "lineno": lineno,
            "in_app": in_app(module, abs_path, self.include, self.exclude),
            "pre_context": [],
            "context_line": None,
            "post_context": [],
        }
        if result["in_app"] and self.context_lines and lineno:
            if raw_path not in checked:
                checked.add(raw_path)
                linecache.checkcache(raw_path)
            result.update(_source_context(raw_path, lineno, self.context_lines, frame.f_globals,
                                          self.scrubber))
        if self.report_local_vars and not running:
            result["vars"] = self.local_vars(frame)
        return result

    def local_vars(self, frame: FrameType) -> dict[str, str]:
        try:
            names = frame.f_locals
        except Exception:
            return {}
        is_module_frame = names is frame.f_globals
        result: dict[str, str] = {}
        try:
            for name, value in names.items():
                if len(result) >= MAX_VARS:
                    break
                name = str(name)
                if is_module_frame and name.startswith("__"):
                    continue  # __builtins__, __loader__, ...: noise, and large
                if self.scrubber.is_secret_key(name):
                    result[name] = FILTERED
                else:
                    result[name] = self.scrubber.text(self.repr.safe(value))
        except RuntimeError:
            pass  # a module's globals changed size under us (another thread): keep what we have
        return result


class _SafeRepr(reprlib.Repr):
    """reprlib with every size bounded before the work, not after.

    reprlib sorts dict keys and set items, which calls the app's ``__lt__``;
    and it reprs bytes whole. Both are replaced here.
    """

    def __init__(self):
        super().__init__()
        self.maxlevel = 3
        self.maxstring = self.maxother = self.maxlong = MAX_REPR
        self.maxdict = self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = 10
        self.maxdeque = self.maxarray = 10

    def safe(self, value: object) -> str:
        try:
            text = self.repr(value)
        except Exception:
            return UNREPRESENTABLE
        return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."

    def repr_dict(self, x, level):
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        items = [f"{self.repr1(key, level - 1)}: {self.repr1(value, level - 1)}"
                 for key, value in islice(x.items(), self.maxdict)]
        if len(x) > self.maxdict:
            items.append("...")
        return "{" + ", ".join(items) + "}"

    def _unsorted(self, x, level, left, right):
        if level <= 0:
            return f"{left}...{right}"
        items = [self.repr1(item, level - 1) for item in islice(x, self.maxset)]
        if len(x) > self.maxset:
            items.append("...")
        return left + ", ".join(items) + right

    def repr_set(self, x, level):
        return self._unsorted(x, level, "{", "}") if x else "set()"

    def repr_frozenset(self, x, level):
        return self._unsorted(x, level, "frozenset({", "})") if x else "frozenset()"

    def repr_instance(self, x, level):
        # reprlib's own version hides a failing __repr__ behind "<X instance at 0x...>".
        text = builtins.repr(x)
        return text if len(text) <= self.maxother else text[: self.maxother - 3] + "..."

    def repr_bytes(self, x, level):
        if len(x) <= self.maxstring:
            return builtins.repr(x)
        return builtins.repr(x[: self.maxstring]) + "..."

    def repr_bytearray(self, x, level):
        if len(x) <= self.maxstring:
            return builtins.repr(x)
        return f"bytearray({builtins.repr(bytes(x[: self.maxstring]))}...)"


# --- pieces ------------------------------------------------------------------

def _linked_exceptions(exc: BaseException):
    """(relation, exception) along the chain, as traceback prints it."""
    while True:
        if exc.__cause__ is not None:
            relation, exc = "cause", exc.__cause__
        elif exc.__context__ is not None and not exc.__suppress_context__:
            relation, exc = "context", exc.__context__
        else:
            return
        yield relation, exc


def _running_frame_ids() -> frozenset[int]:
    """Frames still executing on this thread, whose locals must not be read.

    Before Python 3.13 (PEP 667), reading ``f_locals`` of a running function
    leaves a snapshot dict on the frame until it next syncs. The frame that
    caught the exception has it bound (``except E as error``), so the
    snapshot would keep the exception, its traceback and every frame's locals
    alive for as long as that function runs -- forever in a worker loop.
    """
    if sys.version_info >= (3, 13):
        return frozenset()
    running = set()
    frame = sys._getframe(1)
    while frame is not None:
        running.add(id(frame))
        frame = frame.f_back
    return frozenset(running)


def _source_context(filename: str, lineno: int, around: int, module_globals,
                    scrubber: Scrubber) -> dict:
    try:
        lines = linecache.getlines(filename, module_globals)
    except Exception:
        return {}
    if not 0 < lineno <= len(lines):
        return {}
    first = max(0, lineno - 1 - around)
    # Read from a few lines above: the name of a value the window starts inside stands there.
    above = max(0, first - SCRUB_LINES_ABOVE)
    window = _scrubbed([_source_line(line) for line in lines[above:lineno + around]],
                       scrubber)[first - above:]
    at = lineno - 1 - first
    return {"pre_context": window[:at], "context_line": window[at], "post_context": window[at + 1:]}


def _source_line(line: str) -> str:
    line = line.rstrip("\r\n")
    return line if len(line) <= MAX_LINE else line[:MAX_LINE] + "..."


def _scrubbed(lines: list[str], scrubber: Scrubber) -> list[str]:
    """Source lines redacted as messages and locals are, read as one text: a value on the
    line after its name (``secret = (`` then ``"hunter2"``) is found too. Line by line when
    a redaction took a line break away."""
    scrubbed = scrubber.text("\n".join(lines)).split("\n")
    return scrubbed if len(scrubbed) == len(lines) else [scrubber.text(line) for line in lines]


def _frame_module(frame: FrameType) -> str | None:
    try:
        module = frame.f_globals.get("__name__")
    except Exception:
        return None
    return module if isinstance(module, str) else None


def _absolute(path: str) -> str:
    """Paths such as '<string>' or '<frozen os>' are names, not paths: kept."""
    if not path or path.startswith("<") or os.path.isabs(path):
        return path
    try:
        return os.path.abspath(path)
    except Exception:
        return path


def _short_filename(abs_path: str, module: str | None) -> str:
    """The part of the path that says where the code is to a reader:
    after site-packages, the module's own path, or relative to the cwd."""
    if not abs_path or abs_path.startswith("<"):
        return abs_path
    relative = _library_relative(abs_path)
    if relative is not None:
        return relative
    from_module = _module_relative(abs_path, module)
    if from_module is not None:
        return from_module
    try:
        cwd = os.getcwd() + os.sep
    except OSError:
        return abs_path
    return abs_path[len(cwd):] if abs_path.startswith(cwd) else abs_path


def _library_relative(path: str) -> str | None:
    parts = path.replace("\\", "/").split("/")
    for index in range(len(parts) - 2, -1, -1):
        if parts[index] in _LIBRARY_DIRS:
            return "/".join(parts[index + 1:])
    return None


def _module_relative(abs_path: str, module: str | None) -> str | None:
    """'/srv/app/shop/views.py' with module 'shop.views' -> 'shop/views.py'."""
    if not module or module == "__main__":
        return None
    names = module.split(".")
    parts = abs_path.replace("\\", "/").split("/")
    stem = parts[-1].rpartition(".")[0]
    tail = parts[-len(names) - 1:-1] if stem == "__init__" else parts[-len(names):-1] + [stem]
    if tail != names:
        return None
    return "/".join(parts[-len(names) - (stem == "__init__"):])


def _default_fingerprint_parts(event: dict) -> list[str]:
    frames = event.get("frames") or []
    chosen = [frame for frame in frames if frame.get("in_app")] or frames
    type_name = f"{event.get('module') or ''}.{event.get('type') or ''}".lstrip(".")
    return [type_name] + [
        f"{frame.get('module') or frame.get('filename') or ''}:{frame.get('function') or ''}"
        for frame in chosen]


def _minimal_event(exc: object, handled: object, level: object, scrubber: Scrubber) -> dict:
    """What is left when building the full event failed: type and message."""
    event = {"type": _type_name(exc), "module": _type_module(exc), "frames": [],
             "chain": [], "group": []}
    try:
        event["message"] = scrubber.text(_safe_message(exc))
    except Exception:
        event["message"] = ""
    try:
        event.update(handled=bool(handled), level=str(level))
    except Exception:
        event.update(handled=False, level="error")
    event["timestamp"] = time.time()
    try:
        event["fingerprint"] = fingerprint_of(event)
    except Exception:
        event["fingerprint"] = ""
    return event


def _safe_message(exc: object) -> str:
    """str(exc) plus PEP 678 notes, capped; an exception's __str__ may raise."""
    try:
        message = str(exc)
    except Exception:
        message = "<exception str() failed>"
    try:
        notes = getattr(exc, "__notes__", None)
        if isinstance(notes, (list, tuple)) and notes:
            message = "\n".join([message, *(str(note) for note in notes[:MAX_VARS])])
    except Exception:
        pass
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


def _type_name(exc: object) -> str:
    try:
        return type(exc).__qualname__
    except Exception:
        return "BaseException"


def _type_module(exc: object) -> str:
    try:
        return str(type(exc).__module__)
    except Exception:
        return ""


def _prefixes(modules: Sequence[str] | str) -> tuple[str, ...]:
    """A lone string is one prefix, not a sequence of one-letter prefixes."""
    return (modules,) if isinstance(modules, str) else tuple(str(module) for module in modules)


def _has_prefix(module: str, prefixes: Sequence[str]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)
