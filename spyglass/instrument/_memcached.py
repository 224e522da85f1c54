"""What the memcached clients' instrumentations share (pymemcache, python-memcached): a
CLIENT span per command, named by it, with ``db.system`` = ``memcached``. As Redis's: the
command and how many keys, never a key or a value."""
from ._calls import NOSQL, OUTSIDE_SCOPE, CallRecorder, db_call_metric, time_ns
from ..trace.context import get_active_scope

TIMING = "memcache"  # AppEnlight's name and default (0.1 s), for both clients
ONE, MANY, NONE = "one key", "many keys", "no key"  # how a command is given its keys


class MemcachedCalls:
    """One client library's commands (method name -> ONE, MANY or NONE), their calls and
    the metric they feed; ``describe(client)`` -> its ``server.*`` attributes."""

    def __init__(self, agent, commands, describe):
        # Their errors name the key ("Key contains whitespace: b'…'"): the type only leaves.
        self.calls = CallRecorder(agent, TIMING, NOSQL, quoted_errors=False)
        self.metric = db_call_metric()
        self._describe = describe
        # A command's attributes, made once; a call's are a copy with its server's added.
        self._attributes = {command: _attributes(command, keys)
                            for command, keys in commands.items()}
        self.commands = commands

    def record(self, scope, client, command, args, start, error):
        end = time_ns()
        calls = self.calls
        try:
            attributes = dict(self._attributes[command])
            if self.commands[command] is MANY:
                size = _length(args[0]) if args else None
                if size is not None:
                    attributes["db.operation.batch.size"] = size
            attributes.update(self._describe(client))
            calls.record(scope.span, command, start, end, attributes, error,
                         attributes["db.query.text"])
            if self.metric is not None:
                self.metric("memcached", command, (end - start) / 1e9)
        except Exception:
            calls.failed()

    def wrap(self, method):
        """A traced ``method`` of the client class, the command of its name (an alias such
        as pymemcache's ``get_multi`` is the same function, so the same command)."""
        command = method.__name__
        if command not in self.commands:
            return None  # not a command this table knows: left as it is
        record = self.record

        def traced(client, *args, **kwargs):
            scope = get_active_scope() or OUTSIDE_SCOPE
            start = time_ns()
            try:
                result = method(client, *args, **kwargs)
            except Exception as error:
                record(scope, client, command, args, start, error)
                raise
            record(scope, client, command, args, start, None)
            return result

        return traced


def traced_command(method, memcached):
    """The factory every memcached ``Patch`` names: make(original, MemcachedCalls)."""
    return memcached.wrap(method)


def server(host, port):
    found = {}
    if host:
        found["server.address"] = host
        found["server.port"] = int(port or 11211)
    return found


def _attributes(command, keys):
    # One ? for the key of a one-key command; a many-keys one has a batch size instead.
    text = f"{command} ?" if keys is ONE else command
    return {"db.system": "memcached", "db.operation.name": command, "db.query.text": text}


def _length(value):
    try:
        return len(value)
    except Exception:
        return None
