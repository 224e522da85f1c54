"""redis-py, sync and asyncio, with pipelines: a CLIENT span per command (or per pipeline),
named by the command; only command names and key counts are recorded, never a value.

| patched | how |
|---|---|
| ``redis.client.Redis.execute_command`` | span: ``db.operation.name`` = the command |
| ``redis.client.Pipeline.execute`` | one span for the pipeline: its commands' names |
| ``redis.asyncio.client.Redis.execute_command``, ``…Pipeline.execute`` | the same, awaited |
"""
import functools

from ._calls import NOSQL, Calls, db_call_metric, time_ns
from ..trace.context import get_active_scope

MAX_PIPELINE_NAMES = 20


def install(agent, module):
    calls = Calls(agent, "redis", NOSQL)
    metric = db_call_metric()
    import redis.client

    _patch(redis.client.Redis, "execute_command", _command_wrapper(calls, metric))
    _patch(redis.client.Pipeline, "execute", _pipeline_wrapper(calls, metric))
    try:
        import redis.asyncio.client as asyncio_client
    except ImportError:
        return
    _patch(asyncio_client.Redis, "execute_command", _command_wrapper(calls, metric, True))
    _patch(asyncio_client.Pipeline, "execute", _pipeline_wrapper(calls, metric, True))


def _patch(cls, name, make):
    original = cls.__dict__.get(name)
    if original is not None:
        setattr(cls, name, functools.wraps(original)(make(original)))


def _command_wrapper(calls, metric, is_async=False):
    def describe(client, args):
        command = _command_name(args[0]) if args else "?"
        # Never the arguments: the command, and a ? for each of them.
        attributes = {"db.operation.name": command,
                      "db.query.text": " ".join([command] + ["?"] * (len(args) - 1))}
        return command, attributes

    return _wrapper(calls, metric, describe, is_async)


def _pipeline_wrapper(calls, metric, is_async=False):
    def describe(pipeline, args):
        names = [_command_name(command[0][0]) for command in pipeline.command_stack
                 if command and command[0]]
        shown = names[:MAX_PIPELINE_NAMES] + (["…"] if len(names) > MAX_PIPELINE_NAMES else [])
        attributes = {"db.operation.name": "PIPELINE", "db.operation.batch.size": len(names),
                      "db.query.text": " ".join(shown)}
        return "PIPELINE", attributes

    return _wrapper(calls, metric, describe, is_async)


def _wrapper(calls, metric, describe, is_async):
    def before(client, args):
        # Described before the call: a pipeline's command stack is emptied by execute().
        try:
            return describe(client, args)
        except Exception:
            calls.failed()
            return None

    def record(scope, client, described, start, error):
        end = time_ns()
        if described is None:
            return
        try:
            name, attributes = described
            attributes.update(_server(client))
            calls.record(scope.span, name, start, end, attributes, error,
                         attributes["db.query.text"])
            if metric is not None:
                metric("redis", name, (end - start) / 1e9)
        except Exception:
            calls.failed()

    if is_async:
        async def traced(self, *args, **kwargs):
            scope = get_active_scope()
            if scope is None:
                return await original(self, *args, **kwargs)
            described = before(self, args)
            start = time_ns()
            try:
                result = await original(self, *args, **kwargs)
            except Exception as error:
                record(scope, self, described, start, error)
                raise
            record(scope, self, described, start, None)
            return result
    else:
        def traced(self, *args, **kwargs):
            scope = get_active_scope()
            if scope is None:
                return original(self, *args, **kwargs)
            described = before(self, args)
            start = time_ns()
            try:
                result = original(self, *args, **kwargs)
            except Exception as error:
                record(scope, self, described, start, error)
                raise
            record(scope, self, described, start, None)
            return result

    def make(method):
        nonlocal original
        original = method
        return traced

    original = None
    return make


def _command_name(name):
    # Apps may send the command as bytes (b"GET"): its name, not "B'GET'".
    if isinstance(name, (bytes, bytearray, memoryview)):
        name = bytes(name).decode("utf-8", "replace")
    return str(name).upper()


def _server(client):
    found = {"db.system": "redis"}
    try:
        kwargs = client.connection_pool.connection_kwargs
    except AttributeError:
        return found
    if kwargs.get("host"):
        found["server.address"] = kwargs["host"]
        found["server.port"] = int(kwargs.get("port") or 6379)
    if kwargs.get("db") is not None:
        found["db.namespace"] = str(kwargs["db"])
    return found
