"""pymemcache: a CLIENT span per command of ``pymemcache.client.base.Client``, named by the
method (``get``, ``set_many``); ``PooledClient`` and ``HashClient`` call it, so their
commands are traced once, through it. Never a key or a value: the command and how many keys.

| patched | how |
|---|---|
| ``pymemcache.client.base.Client``: every command below | span ``<command>``, ``db.system`` = ``memcached``, ``db.query.text`` = ``get ?`` (one key) or ``get_many`` with ``db.operation.batch.size`` |
"""
from ._memcached import MANY, NONE, ONE, MemcachedCalls, server, traced_command  # noqa: F401
from ._patch import Patch, Supports

SUPPORTS = Supports("pymemcache", "3.0")
TIMING = "memcache"
COMMANDS = {
    **dict.fromkeys(("set", "add", "replace", "append", "prepend", "cas", "get", "gets",
                     "delete", "incr", "decr", "touch"), ONE),
    **dict.fromkeys(("set_many", "get_many", "gets_many", "delete_many"), MANY),
    **dict.fromkeys(("stats", "version", "flush_all"), NONE),
}
PATCHES = (
    # set_multi, get_multi and delete_multi are set_many, get_many and delete_many
    Patch("pymemcache", "client.base.Client", set_multi="traced_command",
          get_multi="traced_command", delete_multi="traced_command",
          **dict.fromkeys(COMMANDS, "traced_command")),
)


def setup(agent, module):
    return MemcachedCalls(agent, COMMANDS, _describe)


def _describe(client):
    address = client.server
    if isinstance(address, tuple):  # (host, port); a str is a Unix socket's path
        return server(*address[:2])
    return {}
