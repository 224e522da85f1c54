"""Package metadata for spyglass.

The autowrapt entry-point groups are what ``AUTOWRAPT_BOOTSTRAP=<group>`` names.
Each group has one entry: a hook on ``os`` (imported by every interpreter while
it starts, so the hook fires at once) that starts the sensor and registers the
lazy per-library hooks from ``spyglass.instrument.REGISTRY``.
"""
from setuptools import find_packages, setup

GROUPS = ("runtime", "flask", "django", "fastapi", "spyglass")

COLLECTOR = [
    "protobuf>=4.21",
    "opentelemetry-proto>=1.20",
]

TEST = [
    "pytest>=7",
    "mock",  # opentracing's compatibility harness imports it
    "hypothesis",
    "basictracer",
    "opentelemetry-proto>=1.20",
    "protobuf>=4.21",
    "opentelemetry-sdk>=1.20",
    "opentelemetry-exporter-otlp-proto-http>=1.20",
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
    packages=find_packages(include=["spyglass", "spyglass.*"]),
    include_package_data=True,
    package_data={"spyglass.collector": ["static/*", "static/**/*", "templates/*"]},
    install_requires=[
        "wrapt>=1.14",
        "autowrapt>=1.0",
        "opentracing>=2.4,<3",
        "httpx>=0.23",
        "psutil>=5.8",
    ],
    extras_require={
        "collector": COLLECTOR,
        "test": TEST,
        "all": sorted(set(COLLECTOR)),
    },
    entry_points={
        "console_scripts": ["spyglass = spyglass.cli:main"],
        **{group: [f"os = spyglass.bootstrap:{group}"] for group in GROUPS},
    },
)
