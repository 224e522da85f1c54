"""Fresh interpreters of this virtualenv, with the environment a test gives them and none
of the test run's own spyglass, OpenTelemetry or autowrapt settings."""
import os
import subprocess
import sys
import textwrap
import time


def clean_env(**extra):
    """The test process's environment without any spyglass/OTEL/autowrapt settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SPYGLASS_", "OTEL_", "AUTOWRAPT_"))}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_python(code, timeout=60, check=True, **env):
    """Run ``code`` in a fresh interpreter of this venv with ``env`` added."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=clean_env(**env),
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\nstdout:\n{result.stdout}\n"
                             f"stderr:\n{result.stderr}")
    return result


# A program's first lines: ``trace(name, children=1)`` makes a trace through OpenTracing.
TRACE_FUNCTION = textwrap.dedent("""
    import opentracing
    def trace(name, children=1):
        with opentracing.tracer.start_active_span(name) as scope:
            for i in range(children):
                with opentracing.tracer.start_active_span(name + '.child'):
                    pass
            return scope.span
""")


def app(body):
    """A program: ``body`` after the definition of ``trace(name, children)``."""
    return TRACE_FUNCTION + textwrap.dedent(body)


class Script:
    """``code`` running in a fresh interpreter of this venv from a file (the command line is
    exported as a resource attribute: a test's literals stay out of it), with ``env`` added;
    its stdout read line by line as it comes, stderr kept."""

    def __init__(self, code, **env):
        import queue
        import tempfile
        import threading

        self._file = tempfile.NamedTemporaryFile("w", suffix="_script.py", prefix="spyglass_")
        self._file.write(textwrap.dedent(code))
        self._file.flush()
        self.process = subprocess.Popen([sys.executable, "-W", "error", self._file.name],
                                        env=clean_env(**env), stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self.lines = []  # every stdout line so far
        self._new = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            self._new.put(self.lines[-1])
        self._new.put(None)

    def wait_for_line(self, expected, timeout=30):
        """Until stdout has a line equal to ``expected`` (the process is killed if not)."""
        import queue

        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._new.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line == expected:
                return
            if line is None:
                self.process.kill()
                raise AssertionError(f"no line {expected!r}; stdout: {self.lines}\n"
                                     f"stderr:\n{self.process.communicate(timeout=10)[1]}")

    def finish(self, timeout=30):
        """Wait for a clean exit (killed after ``timeout``): (stdout lines, stderr)."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        stderr = self.process.stderr.read()
        self._close()
        if self.process.returncode != 0:
            raise AssertionError(f"exit {self.process.returncode}\nstdout:\n{self.lines}\n"
                                 f"stderr:\n{stderr}")
        return self.lines, stderr

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._close()

    def _close(self):
        self._reader.join(10)  # it has read the last lines
        for pipe in (self.process.stdout, self.process.stderr):
            pipe.close()
        self._file.close()
