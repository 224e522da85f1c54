"""redis-py, sync and asyncio, with pipelines: a CLIENT span per command (or per pipeline),
named by the command; only command names and key counts are recorded, never a value.

``Redis.execute_command`` is a span whose ``db.operation.name`` is the command;
``Pipeline.execute`` one span for the pipeline, with its commands' names; the asyncio
client's the same, awaited.
"""
from ._calls import NOSQL, CallRecorder, db_call_metric
from ._dbapi import timed
from ._patch import Patch, Supports

# The declaration every instrumentation makes (see _patch), its rows alike by design.
SUPPORTS = Supports("redis", "3.0")
TIMING = "redis"
PATCHES = (
    Patch("redis.client", "Redis", execute_command="traced_command"),
    Patch("redis.client", "Pipeline", execute="traced_pipeline"),
    Patch("redis.asyncio.client", "Redis", execute_command="traced_command"),
    Patch("redis.asyncio.client", "Pipeline", execute="traced_pipeline"),
)

MAX_PIPELINE_NAMES = 20
# Commands that wait as long as the app asked, for data to arrive (a worker's loop: RQ's
# BLPOP, a broker's BRPOP): timed and counted, never slow.
BLOCKING_COMMANDS = frozenset((
    "BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP",
    "XREAD", "XREADGROUP", "WAIT", "WAITAOF",
))


class RedisCalls:
    """The calls of redis-py (sync and asyncio alike) and the metric they feed."""

    def __init__(self, agent, module):
        self.calls = CallRecorder(agent, TIMING, NOSQL, waits=BLOCKING_COMMANDS)
        self.metric = db_call_metric()

    def describer(self, describe):
        """``describe(client, args)``, its error logged once: the call then goes unrecorded
        (None)."""
        def before(client, args):
            try:
                return describe(client, args)
            except Exception:
                self.calls.failed()
                return None

        return before

    def record(self, parent, client, args, kwargs, start, end, error, described):
        if described is None:
            return
        calls = self.calls
        try:
            name, attributes = described
            attributes.update(_server(client))
            calls.record(parent, name, start, end, attributes, error,
                         attributes["db.query.text"])
            if self.metric is not None:
                self.metric("redis", name, (end - start) / 1e9)
        except Exception:
            calls.failed()


setup = RedisCalls


# Described before the call (a pipeline's command stack is emptied by execute()); the
# asyncio client's coroutines get coroutine functions.

def traced_command(execute_command, redis):
    return timed(execute_command, redis.record, holds=False,
                 describe=redis.describer(_describe_command))


def traced_pipeline(execute, redis):
    return timed(execute, redis.record, holds=False, describe=redis.describer(_describe_pipeline))


def _describe_command(client, args):
    command = _command_name(args[0]) if args else "?"
    # Never the arguments: the command, and a ? for each of them.
    attributes = {"db.operation.name": command,
                  "db.query.text": " ".join([command] + ["?"] * (len(args) - 1))}
    return command, attributes


def _describe_pipeline(pipeline, args):
    names = [_command_name(command[0][0]) for command in pipeline.command_stack
             if command and command[0]]
    shown = names[:MAX_PIPELINE_NAMES] + (["…"] if len(names) > MAX_PIPELINE_NAMES else [])
    attributes = {"db.operation.name": "PIPELINE", "db.operation.batch.size": len(names),
                  "db.query.text": " ".join(shown)}
    return "PIPELINE", attributes


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
