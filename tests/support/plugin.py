"""The tests' fixtures, as a pytest plugin (tests/conftest.py loads it): any test asks for
one by name, nothing is imported for it."""
import pytest

from .browser import chromium
from .calls import exported_spans
from .otlp_receiver import OTLPReceiver
from .services import started_memcached


@pytest.fixture
def receiver():
    """A real OTLP/HTTP receiver on a free port, for the sensor under test to export to."""
    server = OTLPReceiver().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def module_receiver():
    """A receiver shared by a module's tests (one run of processes checked by several)."""
    server = OTLPReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def exported():
    """The spans the in-process test agent (``support.calls.agent()``) exported during the
    test."""
    exported_spans.clear()
    yield exported_spans
    exported_spans.clear()


@pytest.fixture(scope="session")
def memcached():
    """(host, port) of a memcached: the one running, else one started for the session
    and stopped after it."""
    address, process = started_memcached()
    yield address
    if process is not None:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium (playwright's persistent context), one per test module."""
    yield from chromium(tmp_path_factory.mktemp("chromium-profile"))
