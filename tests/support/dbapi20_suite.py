"""A PEP 249 (DB-API 2.0) compliance suite, modelled on Stuart Bishop's public-domain
``dbapi20.py`` (the classic suite drivers have long run against): the same checks of module
globals, exceptions, connections, cursors, fetching, parameters and type constructors.

It is a program, not a pytest module: ``python dbapi20_suite.py <driver>`` runs every check
against a real database and prints ``{check: outcome}`` as JSON. The tests run it twice per
driver, once plain and once under ``AUTOWRAPT_BOOTSTRAP=spyglass`` inside an active span,
and require identical outcomes: the instrumentation changes nothing a driver does.
"""
import json
import os
import sys
import traceback

PREFIX = f"dbapi20_{os.getpid()}_"
BOOZE = PREFIX + "booze"
BARFLYS = PREFIX + "barflys"
SAMPLES = ["Carlton Cold", "Carlton Draft", "Mountain Goat", "Redback", "Victoria Bitter",
           "XXXX"]


def _address(env_var, default):
    host, _, port = os.environ.get(env_var, default).rpartition(":")
    return host, int(port)


def driver(name):
    """(module, connect kwargs) of a driver by name."""
    if name == "sqlite3":
        import sqlite3

        return sqlite3, {"database": ":memory:"}
    if name == "sqlite3.dbapi2":  # sqlite3 by another name: what dbapi2_modules can name
        import sqlite3.dbapi2

        return sqlite3.dbapi2, {"database": ":memory:"}
    if name in ("psycopg2", "psycopg"):
        module = __import__(name)
        host, port = _address("SPYGLASS_TEST_POSTGRES", "127.0.0.1:5432")
        user = os.environ.get("SPYGLASS_TEST_POSTGRES_USER", "postgres")
        return module, {"host": host, "port": port, "user": user, "dbname": "test"}
    if name == "pg8000":  # pure Python: instrumented through dbapi2_modules only
        import pg8000

        host, port = _address("SPYGLASS_TEST_POSTGRES", "127.0.0.1:5432")
        user = os.environ.get("SPYGLASS_TEST_POSTGRES_USER", "postgres")
        return pg8000, {"host": host, "port": port, "user": user, "database": "test"}
    if name in ("pymysql", "MySQLdb"):
        module = __import__(name)
        host, port = _address("SPYGLASS_TEST_MYSQL", "127.0.0.1:3306")
        return module, {"host": host, "port": port, "user": "root", "password": "",
                        "database": "test"}
    raise ValueError(name)


class Suite:
    def __init__(self, module, connect_kwargs):
        self.module = module
        self.connect_kwargs = connect_kwargs
        self.mark = {"qmark": "?", "format": "%s", "pyformat": "%s",
                     "numeric": ":1", "named": ":p"}[module.paramstyle]

    def connect(self):
        return self.module.connect(**self.connect_kwargs)

    # -- helpers as in dbapi20.py -----------------------------------------------------------

    def execute_ddl1(self, cursor):
        cursor.execute(f"CREATE TABLE {BOOZE} (name VARCHAR(20))")

    def execute_ddl2(self, cursor):
        cursor.execute(f"CREATE TABLE {BARFLYS} (name VARCHAR(20), drink VARCHAR(30))")

    def drop_tables(self):
        conn = self.connect()
        try:
            cursor = conn.cursor()
            for table in (BOOZE, BARFLYS):
                try:
                    cursor.execute(f"DROP TABLE {table}")
                    conn.commit()
                except self.module.Error:
                    conn.rollback()
        finally:
            conn.close()

    def populate(self, cursor):
        for name in SAMPLES:
            cursor.execute(f"INSERT INTO {BOOZE} VALUES ('{name}')")

    def params(self, *values):
        if self.mark == ":p":
            return {f"p{i}": v for i, v in enumerate(values)}
        return values

    def marks(self, count):
        if self.mark == ":p":
            return ", ".join(f":p{i}" for i in range(count))
        if self.mark == ":1":
            return ", ".join(f":{i + 1}" for i in range(count))
        return ", ".join([self.mark] * count)

    # -- the checks -------------------------------------------------------------------------

    def check_module_globals(self):
        assert self.module.apilevel == "2.0"
        assert self.module.threadsafety in (0, 1, 2, 3)
        assert self.module.paramstyle in ("qmark", "numeric", "named", "format", "pyformat")

    def check_exception_hierarchy(self):
        m = self.module
        assert issubclass(m.Warning, Exception)
        assert issubclass(m.Error, Exception)
        for name in ("InterfaceError", "DatabaseError"):
            assert issubclass(getattr(m, name), m.Error)
        for name in ("DataError", "OperationalError", "IntegrityError", "InternalError",
                     "ProgrammingError", "NotSupportedError"):
            assert issubclass(getattr(m, name), m.DatabaseError)

    def check_connect_and_close(self):
        conn = self.connect()
        conn.close()

    def check_commit_and_rollback(self):
        conn = self.connect()
        try:
            conn.commit()
            if hasattr(conn, "rollback"):
                conn.rollback()
        finally:
            conn.close()

    def check_cursor_isolation(self):
        conn = self.connect()
        try:
            cur1, cur2 = conn.cursor(), conn.cursor()
            self.execute_ddl1(cur1)
            cur1.execute(f"INSERT INTO {BOOZE} VALUES ('Victoria Bitter')")
            cur2.execute(f"SELECT name FROM {BOOZE}")
            rows = cur2.fetchall()
            assert len(rows) == 1 and len(rows[0]) == 1
        finally:
            conn.close()

    def check_description(self):
        conn = self.connect()
        try:
            cur = conn.cursor()
            self.execute_ddl1(cur)
            assert cur.description is None
            cur.execute(f"SELECT name FROM {BOOZE}")
            assert len(cur.description) == 1 and len(cur.description[0]) == 7
            assert cur.description[0][0].lower() == "name"
            self.execute_ddl2(cur)
            assert cur.description is None
        finally:
            conn.close()

    def check_rowcount(self):
        conn = self.connect()
        try:
            cur = conn.cursor()
            self.execute_ddl1(cur)
            assert cur.rowcount in (-1, 0)
            cur.execute(f"INSERT INTO {BOOZE} VALUES ('Victoria Bitter')")
            assert cur.rowcount in (-1, 1)
            cur.execute(f"SELECT name FROM {BOOZE}")
            assert cur.rowcount in (-1, 1)
        finally:
            conn.close()

    def check_close_makes_connection_unusable(self):
        conn = self.connect()
        cur = conn.cursor()
        conn.close()
        try:
            self.execute_ddl1(cur)
        except self.module.Error:
            return "raised Error"
        return "no error"

    def check_execute_with_parameters(self):
        conn = self.connect()
        try:
            cur = conn.cursor()
            self.execute_ddl1(cur)
            cur.execute(f"INSERT INTO {BOOZE} VALUES ({self.marks(1)})", self.params("Cooper's"))
            cur.execute(f"SELECT name FROM {BOOZE}")
            return cur.fetchall()[0][0]
        finally:
            conn.close()

    def check_executemany(self):
        conn = self.connect()
        try:
            cur = conn.cursor()
            self.execute_ddl1(cur)
            cur.executemany(f"INSERT INTO {BOOZE} VALUES ({self.marks(1)})",
                            [self.params("Cooper's"), self.params("Boag's")])
            assert cur.rowcount in (-1, 2)
            cur.execute(f"SELECT name FROM {BOOZE} ORDER BY name")
            return [row[0] for row in cur.fetchall()]
        finally:
            conn.close()

    def check_fetchone(self):
        conn = self.connect()
        try:
            cur = conn.cursor()
            try:
                cur.fetchone()
                before = "no error"
            except self.module.Error:
                before = "raised Error"
            self.execute_ddl1(cur)
            cur.execute(f"SELECT name FROM {BOOZE}")
            assert cur.fetchone() is None
            cur.execute(f"INSERT INTO {BOOZE} VALUES ('Victoria Bitter')")
            cur.execute(f"SELECT name FROM {BOOZE}")
            row = cur.fetchone()
            assert len(row) == 1 and row[0] == "Victoria Bitter"
            assert cur.fetchone() is None
            return before
        finally:
            conn.close()

    def check_fetchmany(self):
        conn = self.connect()
        try:
            cur = conn.cursor()
            assert cur.arraysize == 1
            self.execute_ddl1(cur)
            self.populate(cur)
            cur.execute(f"SELECT name FROM {BOOZE}")
            assert len(cur.fetchmany()) == 1
            cur.arraysize = 10
            assert len(cur.fetchmany(3)) == 3
            assert len(cur.fetchmany(4)) == 2
            assert cur.fetchmany(4) == [] or tuple(cur.fetchmany(4)) == ()
            cur.execute(f"SELECT name FROM {BOOZE}")
            return len(cur.fetchmany())
        finally:
            conn.close()

    def check_fetchall(self):
        conn = self.connect()
        try:
            cur = conn.cursor()
            self.execute_ddl1(cur)
            self.populate(cur)
            cur.execute(f"SELECT name FROM {BOOZE}")
            rows = sorted(row[0] for row in cur.fetchall())
            assert rows == SAMPLES
            assert list(cur.fetchall()) == []
            return len(rows)
        finally:
            conn.close()

    def check_mixed_fetch(self):
        conn = self.connect()
        try:
            cur = conn.cursor()
            self.execute_ddl1(cur)
            self.populate(cur)
            cur.execute(f"SELECT name FROM {BOOZE} ORDER BY name")
            first = cur.fetchone()[0]
            middle = [row[0] for row in cur.fetchmany(2)]
            rest = [row[0] for row in cur.fetchall()]
            assert [first] + middle + rest == SAMPLES
        finally:
            conn.close()

    def check_iteration(self):
        conn = self.connect()
        try:
            cur = conn.cursor()
            self.execute_ddl1(cur)
            self.populate(cur)
            cur.execute(f"SELECT name FROM {BOOZE} ORDER BY name")
            return [row[0] for row in cur]
        finally:
            conn.close()

    def check_none_is_null(self):
        conn = self.connect()
        try:
            cur = conn.cursor()
            self.execute_ddl2(cur)
            cur.execute(f"INSERT INTO {BARFLYS} VALUES ('a', NULL)")
            cur.execute(f"SELECT drink FROM {BARFLYS}")
            return cur.fetchall()[0][0]
        finally:
            conn.close()

    def check_setsizes(self):
        conn = self.connect()
        try:
            cur = conn.cursor()
            return [hasattr(cur, "setinputsizes"), hasattr(cur, "setoutputsize")]
        finally:
            conn.close()

    def check_optional_methods_are_the_drivers(self):
        conn = self.connect()
        try:
            cur = conn.cursor()
            return {name: hasattr(cur, name) for name in ("callproc", "nextset", "scroll",
                                                           "executescript", "lastrowid")}
        finally:
            conn.close()

    def check_type_objects_and_constructors(self):
        m = self.module
        for name in ("STRING", "BINARY", "NUMBER", "DATETIME", "ROWID"):
            getattr(m, name, None)
        found = {}
        for name, args in (("Date", (2002, 12, 25)), ("Time", (13, 45, 30)),
                           ("Timestamp", (2002, 12, 25, 13, 45, 30)), ("Binary", (b"x",))):
            constructor = getattr(m, name, None)
            found[name] = type(constructor(*args)).__name__ if constructor else None
        return found

    def check_syntax_error_is_a_database_error(self):
        conn = self.connect()
        try:
            cur = conn.cursor()
            try:
                cur.execute("SELEKT nothing")
            except self.module.DatabaseError as exc:
                return type(exc).__name__
            return "no error"
        finally:
            conn.close()

    def run(self):
        results = {}
        for name in sorted(n for n in dir(self) if n.startswith("check_")):
            self.drop_tables()
            try:
                outcome = getattr(self, name)()
                results[name] = "ok" if outcome is None else f"ok: {outcome!r}"
            except Exception as exc:
                last = traceback.extract_tb(exc.__traceback__)[-1]
                results[name] = f"failed: {type(exc).__name__} at line {last.lineno}"
        self.drop_tables()
        return results


def main(name, traced=False):
    module, kwargs = driver(name)
    suite = Suite(module, kwargs)
    if traced:
        import spyglass

        with spyglass.tracer().start_active_span("dbapi20"):
            results = suite.run()
    else:
        results = suite.run()
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1], traced=len(sys.argv) > 2 and sys.argv[2] == "traced")
