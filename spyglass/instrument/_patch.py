"""The one way spyglass patches a library, refuses to patch it twice, and undoes it.

An instrumentation module declares at its top what it patches, as data::

    SUPPORTS = Supports("redis", "3.0")   # the versions it is written for (None: stdlib)
    TIMING = "redis"                      # the timing.<key> whose false switches it off
    PATCHES = (
        # in module, on Redis: its execute_command replaced by what traced_command makes
        Patch("redis.client", "Redis", execute_command="traced_command"),
    )

and the registry (``spyglass.instrument``) applies each ``Patch`` when its module is
imported: ``make(original, shared)``, the instrumentation's function a keyword names,
returns the replacement of ``original`` (the attribute as found, the function inside a
classmethod or staticmethod) or None to leave it as it is; ``shared`` is what the module's
optional ``setup(agent, module)`` made once for all its patches (else the agent).

``apply`` does every patch the same way: it records the original, gives a function that
replaces a callable the original's name, doc and ``__wrapped__``, keeps a classmethod a
classmethod, and refuses a second patch of an attribute whose patch is still in place,
alone or wrapped by another's (the one guard against patching twice: a second agent
start, a second hook). ``undo`` puts back every original it replaced, as the very object
it was, and removes what it added.
"""
import functools
import importlib
import logging
import types

log = logging.getLogger("spyglass")


class Patch:
    """What one object of a library gets replaced: in ``module`` (as imported), on the
    object at the dotted path ``holder`` (a class, a submodule; the module itself when
    empty), each keyword names an attribute and the instrumentation's function that makes
    its replacement: ``Patch("redis.client", "Redis", execute_command="traced_command")``.

    ``module`` None: the module the hook fired for (a driver named in the ``dbapi2_modules``
    setting). ``inherited``: an attribute the holder only inherits (or, on a module, lacks)
    is patched too, on the holder itself, ``make`` getting the inherited value (or None); by
    default an attribute the holder does not define itself is left alone."""

    __slots__ = ("module", "holder", "inherited", "attributes")

    def __init__(self, module, holder="", *, inherited=False, **attributes):
        self.module = module
        self.holder = holder
        self.inherited = inherited
        self.attributes = attributes  # attribute name -> name of the function making it

    def __repr__(self):
        where = f"{self.module}:{self.holder}" if self.holder else str(self.module)
        return f"Patch({where}, {self.attributes})"


class Supports:
    """The library versions an instrumentation is written for: ``minimum`` and up, below
    ``below`` (if given), of the first of ``distributions`` installed."""

    __slots__ = ("distributions", "minimum", "below")

    def __init__(self, distributions, minimum, below=None):
        self.distributions = distributions
        self.minimum = minimum
        self.below = below

    def names(self):
        found = self.distributions
        return (found,) if isinstance(found, str) else found

    def admits(self, version):
        number = version_tuple(version)
        if number < version_tuple(self.minimum):
            return False
        return self.below is None or number < version_tuple(self.below)

    def __str__(self):
        upper = f", < {self.below}" if self.below else ""
        return f"{self.names()[0]} >= {self.minimum}{upper}"


def version_tuple(version):
    """``"2.9.13"`` -> ``(2, 9, 13)``; a suffix such as ``rc1`` or ``.post2`` ends it."""
    numbers = []
    for part in str(version).split("."):
        digits = ""
        for char in part:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            break
        numbers.append(int(digits))
        if len(digits) < len(part):
            break
    return tuple(numbers)


class Applied:
    """One attribute patched: where, what was there (``ABSENT``: nothing of the holder's
    own), what is there now, who put it and on the import of which module."""

    __slots__ = ("holder", "name", "original", "replacement", "instrumentation", "module")

    def __init__(self, holder, name, original, replacement, instrumentation, module):
        self.holder, self.name = holder, name  # where
        self.original, self.replacement = original, replacement  # what was, what is
        self.instrumentation, self.module = instrumentation, module  # by whom, on which import


ABSENT = object()
_DESCRIPTORS = (classmethod, staticmethod)

# (id(holder), attribute name) -> Applied, in the order applied. Holders are modules and
# classes, which live as long as the process: keeping them here keeps nothing alive.
_applied = {}


def apply(declared, module, instrumentation, shared):
    """Apply one declared ``Patch`` to ``module`` (imported) for ``instrumentation`` (the
    instrumentation module); returns how many attributes it replaced."""
    holder = resolve(module, declared.holder)
    replaced = 0
    for name, make in declared.attributes.items():
        replaced += _replace(holder, name, getattr(instrumentation, make), declared.inherited,
                             shared, instrumentation.__name__, module.__name__)
    return replaced


def _replace(holder, name, make, inherited, shared, instrumentation, module):
    key = (id(holder), name)
    own = _own(holder, name)
    if key in _applied and _holds(own, _applied[key].replacement):
        return False  # the one guard: patched already (ours is there, or inside what is)
    found = own
    if own is ABSENT:
        if not inherited:
            log.debug("spyglass: %s has no %s of its own; not patched", holder, name)
            return False
        found = getattr(holder, name, None)
    descriptor = type(found) if isinstance(found, _DESCRIPTORS) else None
    original = found.__func__ if descriptor is not None else found
    replacement = make(original, shared)
    if replacement is None:
        return False
    if isinstance(replacement, types.FunctionType) and callable(original):
        like(replacement, original)
    if descriptor is not None:
        replacement = descriptor(replacement)
    setattr(holder, name, replacement)
    _applied[key] = Applied(holder, name, own, replacement, instrumentation, module)
    return True


def undo(instrumentation=None, module=None):
    """Put back every original (of one instrumentation module, by name, or of all; of the
    patches made on one module's import, by name, or of all), the latest patch first. An
    attribute someone else has replaced since is left as it is."""
    for key, applied in reversed(list(_applied.items())):
        if instrumentation is not None and applied.instrumentation != instrumentation:
            continue
        if module is not None and applied.module != module:
            continue
        del _applied[key]
        holder, name = applied.holder, applied.name
        if _own(holder, name) is not applied.replacement:
            log.debug("spyglass: %s.%s was replaced after us; left as it is", holder, name)
            continue
        if applied.original is ABSENT:
            delattr(holder, name)
        else:
            setattr(holder, name, applied.original)


def applied(instrumentation=None):
    """The patches in place (of one instrumentation module, by name), in order."""
    return [found for found in _applied.values()
            if instrumentation is None or found.instrumentation == instrumentation]


def alias(replaced, original):
    """The replacement of a second name of an object patched just before under its first
    (``sqlite3.dbapi2.connect`` is ``sqlite3.connect``; ``psycopg.connect`` is
    ``psycopg.Connection.connect``): ``replaced``, the first name's replacement, where
    ``original`` is what it replaced; else None, to leave the second name alone."""
    wrapped = getattr(getattr(replaced, "__func__", replaced), "__wrapped__", None)
    if wrapped is not None and getattr(original, "__func__", original) is wrapped:
        return replaced
    return None


def first(original, ours, failure):
    """A replacement of ``original`` (a method) that calls ``ours()`` before it; an error in
    ``ours`` is logged (``failure``: what could not be done) and the method runs all the
    same."""
    def calling_ours_first(self, *args, **kwargs):
        try:
            ours()
        except Exception:
            log.exception("spyglass: could not %s", failure)
        return original(self, *args, **kwargs)

    return calling_ours_first


def like(wrapper, wrapped):
    """``wrapper`` with ``wrapped``'s name, doc, module and ``__wrapped__``, as
    ``functools.update_wrapper`` gives it (a wrapped object without them is fine)."""
    try:
        functools.update_wrapper(wrapper, wrapped)
    except Exception:
        pass
    return wrapper


def resolve(module, path):
    """The object at dotted ``path`` in ``module`` (the module itself for ""). A submodule
    on the way that its package has not imported itself is imported."""
    holder = module
    for parent in path.split(".") if path else ():
        try:
            holder = getattr(holder, parent)
        except AttributeError:
            if not isinstance(holder, types.ModuleType):
                raise
            holder = importlib.import_module(f"{holder.__name__}.{parent}")
    return holder


def _holds(value, replacement, depth=32):
    """Whether ``value`` is ``replacement``, or wraps it (through ``__wrapped__``): a
    patch displaced by something that does not call it may be made again."""
    while value is not None and depth:
        if value is replacement:
            return True
        value = getattr(getattr(value, "__func__", value), "__wrapped__", None)
        depth -= 1
    return False


def _own(holder, name):
    """The holder's own attribute, as stored (a classmethod as the classmethod), else
    ABSENT."""
    try:
        namespace = vars(holder)
    except TypeError:  # no __dict__: only what getattr finds
        return getattr(holder, name, ABSENT)
    return namespace.get(name, ABSENT)
