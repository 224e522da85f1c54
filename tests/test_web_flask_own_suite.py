"""Flask's own test suite, from the sdist of the installed Flask, passes under
AUTOWRAPT_BOOTSTRAP=flask exactly as it does without the sensor: test by test, the same
outcome. The sensor's spans reaching a real receiver show it was on."""
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ElementTree
from importlib import metadata

import pytest

from support.processes import clean_env
from support.services import require

# Flask's conftest imports a sentinel newer pytest renamed; this gives it back.
PYTEST_COMPAT = """
import _pytest.compat, _pytest.monkeypatch
if not hasattr(_pytest.monkeypatch, "notset"):
    _pytest.monkeypatch.notset = _pytest.compat.NOTSET
"""


@pytest.fixture(scope="module")
def flask_tests(tmp_path_factory):
    """The tests/ directory of Flask's sdist, for the installed version."""
    version = metadata.version("flask")
    where = tmp_path_factory.mktemp("flask-sdist")
    download = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
         "--disable-pip-version-check", "-q", "-d", str(where), f"flask=={version}"],
        capture_output=True, text=True, timeout=180)
    require(download.returncode == 0, f"could not download Flask {version}'s sdist: "
                                      f"{download.stderr.strip()[-300:]}")
    archive, = where.glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(where, filter="data")
    root = where / f"flask-{version}"
    (root / "pytest_compat_notset.py").write_text(PYTEST_COMPAT)
    return root


def outcomes(root, name, **env):
    """{test id: outcome} from a run of Flask's tests (in a fresh interpreter)."""
    report = root / f"{name}.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider",
         "-p", "pytest_compat_notset", f"--junitxml={report}"],
        cwd=root, env=clean_env(PYTHONPATH=str(root), **env), capture_output=True, text=True,
        timeout=600)
    found = {}
    for case in ElementTree.parse(report).iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        found[f"{case.get('classname')}::{case.get('name')}"] = kinds[0] if kinds else "passed"
    return found


def test_flask_s_own_tests_pass_with_the_sensor_as_without(flask_tests, receiver):
    plain = outcomes(flask_tests, "plain")
    sensed = outcomes(flask_tests, "sensed", AUTOWRAPT_BOOTSTRAP="flask",
                      SPYGLASS_ENDPOINT=receiver.url, SPYGLASS_METRICS_INTERVAL="0")
    assert len(plain) > 400
    assert sum(outcome == "passed" for outcome in plain.values()) > 400
    changed = {test: (plain.get(test), sensed.get(test))
               for test in set(plain) | set(sensed) if plain.get(test) != sensed.get(test)}
    assert changed == {}
    # The sensor was on: Flask's test clients' requests were traced and exported.
    assert len(receiver.wait_for(lambda r: len(r.spans()) > 100 and r.spans())) > 100
    assert receiver.schema_errors == []
