"""python-memcached (the ``memcache`` module): a CLIENT span per command of
``memcache.Client``, named by the method (``get``, ``set_multi``). Never a key or a value:
the command and how many keys.

| patched | how |
|---|---|
| ``memcache.Client``: every command below | span ``<command>``, ``db.system`` = ``memcached``, ``db.query.text`` = ``get ?`` (one key) or ``get_multi`` with ``db.operation.batch.size`` |

``server.*`` is set when the client has one server (with several, the key picks it).
"""
from ._memcached import MANY, NONE, ONE, MemcachedCalls, server, traced_command  # noqa: F401
from ._patch import Patch, Supports

SUPPORTS = Supports("python-memcached", "1.58")
TIMING = "memcache"
COMMANDS = {
    **dict.fromkeys(("set", "add", "replace", "append", "prepend", "cas", "get", "gets",
                     "delete", "incr", "decr", "touch"), ONE),
    **dict.fromkeys(("set_multi", "get_multi", "delete_multi"), MANY),
    **dict.fromkeys(("get_stats", "flush_all"), NONE),
}
PATCHES = (
    Patch("memcache", "Client", **dict.fromkeys(COMMANDS, "traced_command")),
)


def setup(agent, module):
    return MemcachedCalls(agent, COMMANDS, _describe)


def _describe(client):
    servers = client.servers
    if len(servers) == 1:
        return server(getattr(servers[0], "ip", None), getattr(servers[0], "port", None))
    return {}
