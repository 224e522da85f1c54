"""Package metadata for spyglass.

The autowrapt entry-point groups are what ``AUTOWRAPT_BOOTSTRAP=<group>`` names.
Each group has one entry: a hook on ``os`` (imported by every interpreter while
it starts, so the hook fires at once) that starts the sensor and registers the
lazy per-library hooks from ``spyglass.instrument.REGISTRY``.
"""
import ast
import re

from setuptools import find_namespace_packages, setup


def bootstrap_groups():
    """spyglass.bootstrap.GROUPS, read from its source (setup.py does not import the
    package it builds)."""
    with open("spyglass/bootstrap/__init__.py", encoding="utf-8") as source:
        return ast.literal_eval(re.search(r"^GROUPS = (\(.*\))$", source.read(), re.M).group(1))


GROUPS = bootstrap_groups()

COLLECTOR = [
    "protobuf>=4.21",
    "opentelemetry-proto>=1.20",
    "googleapis-common-protos>=1.56",  # google.rpc.Status error bodies
    "jinja2>=3.0",                      # the web UI's pages
]

# `spyglass serve --db postgresql://…`: several collectors on one database.
COLLECTOR_POSTGRES = COLLECTOR + [
    "psycopg[binary]>=3.1",
    "psycopg_pool>=3.2",
]

# `spyglass demo`: the example Flask app under uWSGI (uWSGI compiles: needs a C compiler).
DEMO = [
    "flask>=2.2",
    "uwsgi>=2.0.20",
]

TEST = [
    "pytest>=7",
    "mock",  # opentracing's compatibility harness imports it
    "hypothesis",
    "schemathesis",  # the collector's API against its OpenAPI document
    "basictracer",
    "opentelemetry-sdk>=1.20",
    "opentelemetry-exporter-otlp-proto-http>=1.20",
    "playwright>=1.40",  # drives Debian's chromium; its own browser download is not used
    # frameworks and servers
    "flask>=2.2", "flask-login", "django>=4.2", "fastapi", "starlette", "uvicorn", "hypercorn",
    "gunicorn", "uwsgi>=2.0.20", "aiohttp", "pyramid", "tornado", "gevent",
    # databases, caches, HTTP clients, templates
    "psycopg2-binary", "psycopg[binary]", "pymysql", "mysqlclient", "redis", "pysolr",
    "requests", "urllib3", "httpx", "jinja2", "mako", "chameleon",
    "asyncpg", "aiomysql", "pg8000", "sqlalchemy[asyncio]", "pymemcache", "python-memcached",
    # message buses
    "pika", "paho-mqtt", "nats-py",
    # process pools: billiard is Celery's
    "billiard",
    # task queues (kombu's redis extra: Celery on the Redis broker)
    "celery", "kombu[redis]", "rq",
]

with open("README.md", encoding="utf-8") as readme:
    README = readme.read()

setup(
    name="spyglass",
    version="0.1.0",
    description="Zero-code application performance sensor for Python, with an embedded OTLP collector",
    long_description=README,
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    # Namespace discovery lists the collector's static/ and templates/ too, as the data
    # directories they are (plain find_packages leaves setuptools warning about them).
    packages=find_namespace_packages(include=["spyglass", "spyglass.*"],
                                     exclude=["*.__pycache__"]),
    include_package_data=True,
    package_data={"spyglass.collector": ["static/*", "static/**/*", "templates/*",
                                         "templates/**/*"]},
    install_requires=[
        "wrapt>=1.14",
        "autowrapt>=1.0",
        "opentracing>=2.4,<3",
        "httpx>=0.23",
        "psutil>=5.8",
    ],
    extras_require={
        "collector": COLLECTOR,
        "collector-postgres": COLLECTOR_POSTGRES,
        "demo": DEMO,
        "test": sorted(set(TEST + COLLECTOR_POSTGRES)),
        "all": sorted(set(COLLECTOR_POSTGRES + DEMO)),
    },
    entry_points={
        "console_scripts": ["spyglass = spyglass.cli:main"],
        **{group: [f"os = spyglass.bootstrap:{group}"] for group in GROUPS},
    },
)
