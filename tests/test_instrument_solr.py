"""pysolr against a local HTTP server answering as Solr does (its JSON response format):
a span per operation with core, obfuscated query, hits and QTime, and no extra HTTP span."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from support.calls import instrumented, request_span

pysolr = pytest.importorskip("pysolr")
instrumented("requests")
instrumented("pysolr")

DOCS = [{"id": "1", "title": ["spyglass"]}, {"id": "2", "title": ["telescope"]}]


class FakeSolr(BaseHTTPRequestHandler):
    """The parts of Solr's JSON API pysolr uses: /select and /update."""
    protocol_version = "HTTP/1.1"

    def reply(self, payload, status=200):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json;charset=utf-8")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlsplit(self.path)
        params = parse_qs(url.query)
        if url.path.rstrip("/").endswith("/select"):
            self.reply({"responseHeader": {"status": 0, "QTime": 7,
                                           "params": {k: v[0] for k, v in params.items()}},
                        "response": {"numFound": len(DOCS), "start": 0, "numFoundExact": True,
                                     "docs": DOCS}})
        else:
            self.reply({"responseHeader": {"status": 404, "QTime": 0},
                        "error": {"msg": "not found", "code": 404}}, 404)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.reply({"responseHeader": {"status": 0, "QTime": 3}})

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def solr_url():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeSolr)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/solr/products"
    httpd.shutdown()
    httpd.server_close()


def test_search_add_delete_commit(solr_url, exported):
    solr = pysolr.Solr(solr_url, always_commit=False, timeout=5)
    with request_span():
        results = solr.search("title:spyglass AND owner:alice@example.com", rows=10)
        solr.add([{"id": "3", "title": "new"}])
        solr.delete(id="3")
        solr.commit()
    assert results.hits == 2 and len(results) == 2
    calls = exported.calls()
    assert [s.name for s in calls] == ["solr.search products", "solr.add products",
                                       "solr.delete products", "solr.commit products"]
    search = calls[0].attributes
    assert search["db.system"] == "solr" and search["db.namespace"] == "products"
    assert search["spyglass.solr.hits"] == 2 and search["spyglass.solr.qtime_ms"] == 7
    assert search["db.query.text"] == "title:? AND owner:?"
    assert search["spyglass.category"] == "nosql"


def test_a_solr_error_is_an_error_span(solr_url, exported):
    solr = pysolr.Solr(solr_url, timeout=5)
    with request_span():
        with pytest.raises(pysolr.SolrError):
            solr.more_like_this("id:1", "title")
    span, = exported.calls()
    assert span.name == "solr.more_like_this products" and span.status == 2


@pytest.mark.parametrize("query, expected", [
    ("*:*", "*:*"),
    ("hunter2", "?"),
    ('name:"Ann Lee" OR -ssn:[100 TO 999]', "name:? OR -ssn:[? TO ?]"),
    ("+name:bob^2 title:(spy* OR glass)", "+name:? title:(? OR ?)"),
    ('password:"unterminated', "password:?"),
    ("price:{10 TO *] AND id:*", "price:{? TO *] AND id:*"),
])
def test_query_terms_never_leave_only_fields_and_operators(query, expected):
    from spyglass.redact.solr import obfuscate_query

    assert obfuscate_query(query) == expected
