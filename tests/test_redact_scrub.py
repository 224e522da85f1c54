"""Scrubbing tables: key names, headers, query strings, URLs, nested data, free text."""

import time

import pytest

from spyglass.redact.scrub import DEFAULT_SECRET_HEADERS, DEFAULT_SECRET_KEYS, FILTERED, Scrubber

F = FILTERED
scrubber = Scrubber()


def luhn_valid(digits):
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


VISA = "4111111111111111"
NOT_LUHN = "4111111111111112"
ORDER_NUMBER = "1234567890123"  # 13 digits, fails Luhn
assert luhn_valid(VISA) and not luhn_valid(NOT_LUHN) and not luhn_valid(ORDER_NUMBER)


@pytest.mark.parametrize("name", [
    "password", "PASSWORD", "user_password", "passwd", "pwd", "db_pwd", "secret", "client_secret",
    "token", "access_token", "accessToken", "authToken", "refresh-token", "X-Api-Key", "api_key",
    "apiKey", "HTTP_AUTHORIZATION", "auth", "oauth", "csrfmiddlewaretoken", "csrf_token",
    "XSRF-TOKEN", "session", "sessionid", "PHPSESSID", "connect.sid", "cookie", "Set-Cookie",
    "card_number", "cardnumber", "creditCardNumber", "cc_number", "cvv", "private_key",
    "AWS_SECRET_ACCESS_KEY", "credentials", "jwt", b"password",
])
def test_secret_key_names(name):
    assert scrubber.is_secret_key(name)


@pytest.mark.parametrize("name", [
    "author", "authors_count", "tokenizer_name", "WWW-Authenticate", "username", "email", "id",
    "content_type", "Content-Length", "keyboard", "passenger", "consider", "description", "",
    None, 42, ("password",),
])
def test_ordinary_key_names(name):
    assert not scrubber.is_secret_key(name)


def test_key_lists_can_be_extended_or_replaced():
    assert Scrubber(extra_keys=["tenant"]).is_secret_key("tenant_id")
    assert not scrubber.is_secret_key("tenant_id")
    replaced = Scrubber(secret_keys=["pin"])
    assert replaced.is_secret_key("card_pin") and not replaced.is_secret_key("password")
    assert "password" in DEFAULT_SECRET_KEYS and "authorization" in DEFAULT_SECRET_HEADERS


@pytest.mark.parametrize("headers, expected", [
    ({"Authorization": "Bearer abc", "Accept": "text/html"},
     {"Authorization": F, "Accept": "text/html"}),
    ([("Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Proxy-Authorization", "Basic x"),
      ("X-Api-Key", "k"), ("X-Auth-Token", "t"), ("X-CSRF-Token", "c"), ("X-Request-Id", "r1")],
     {"Cookie": F, "Set-Cookie": F, "Proxy-Authorization": F, "X-Api-Key": F,
      "X-Auth-Token": F, "X-CSRF-Token": F, "X-Request-Id": "r1"}),
    ({"HTTP_COOKIE": "a=1", "HTTP_USER_AGENT": "curl/8"},
     {"HTTP_COOKIE": F, "HTTP_USER_AGENT": "curl/8"}),
    ({"X-Custom-Secret": "s", "WWW-Authenticate": 'Basic realm="x"'},
     {"X-Custom-Secret": F, "WWW-Authenticate": 'Basic realm="x"'}),
    ([(b"authorization", b"Bearer abc"), (b"content-type", b"text/plain")],
     {"authorization": F, "content-type": "text/plain"}),
    ([("Accept", "text/html"), ("Accept", "application/json"), ("Set-Cookie", "a"),
      ("Set-Cookie", "b")],
     {"Accept": "text/html, application/json", "Set-Cookie": F}),
    ({"Referer": "https://bob:pw@shop.example/cart?session=abc&step=2"},
     {"Referer": f"https://{F}@shop.example/cart?session={F}&step=2"}),
    ({}, {}),
    (None, {}),
    ([("no-value",)], {}),
])
def test_headers(headers, expected):
    assert scrubber.headers(headers) == expected


@pytest.mark.parametrize("qs, expected", [
    ("", ""),
    ("page=2&sort=name", "page=2&sort=name"),
    ("user=bob&password=hunter2&next=%2Fhome", f"user=bob&password={F}&next=%2Fhome"),
    ("api_key=abc&api_key=def", f"api_key={F}&api_key={F}"),
    ("q=a+b%20c&access_token=xyz&&flag", f"q=a+b%20c&access_token={F}&&flag"),
    ("%70assword=x&pass%77ord=y", f"%70assword={F}&pass%77ord={F}"),
    ("token&x=1", "token&x=1"),
    ("author=me&tokenizer_name=bpe", "author=me&tokenizer_name=bpe"),
    ("csrfmiddlewaretoken=abc&x=%ZZ", f"csrfmiddlewaretoken={F}&x=%ZZ"),
])
def test_query_string(qs, expected):
    assert scrubber.query_string(qs) == expected


@pytest.mark.parametrize("url, expected", [
    ("https://example.com/a/b?page=1", "https://example.com/a/b?page=1"),
    ("https://bob:hunter2@example.com/path", f"https://{F}@example.com/path"),
    ("https://token@example.com/", f"https://{F}@example.com/"),
    ("postgresql://app:s3cret@db.internal:5432/shop", f"postgresql://{F}@db.internal:5432/shop"),
    ("https://example.com/cb?code=1&token=abc#frag", f"https://example.com/cb?code=1&token={F}#frag"),
    ("https://example.com/cb#access_token=abc&state=xyz",
     f"https://example.com/cb#access_token={F}&state=xyz"),
    ("/login?next=/&password=x", f"/login?next=/&password={F}"),
    ("https://example.com/users/bob@example.com", "https://example.com/users/bob@example.com"),
    ("http://[::1", "http://[::1"),
    ("", ""),
])
def test_url(url, expected):
    assert scrubber.url(url) == expected


def test_nested_data():
    data = {
        "user": {"name": "bob", "password": "hunter2", "email": "bob@example.com"},
        "items": [{"sku": "A1", "card_number": VISA}, ("tuple", {"api_key": "k"})],
        "count": 3, "ratio": 0.5, "ok": True, "none": None, 7: "seven",
        "headers": {"Authorization": "Bearer zzzzzzzzzz"},
    }
    assert scrubber.mapping(data) == {
        "user": {"name": "bob", "password": F, "email": F},
        "items": [{"sku": "A1", "card_number": F}, ("tuple", {"api_key": F})],
        "count": 3, "ratio": 0.5, "ok": True, "none": None, 7: "seven",
        "headers": {"Authorization": F},
    }
    assert data["user"]["password"] == "hunter2", "the input is never modified"


def test_nested_data_is_bounded():
    deep = current = {}
    for _ in range(50):
        current["child"] = {}
        current = current["child"]
    depth, node = 0, scrubber.mapping(deep)
    while isinstance(node, dict):
        node, depth = node["child"], depth + 1
    assert node == "[Truncated]" and depth == 10

    assert len(scrubber.mapping(list(range(10_000)))) == 500
    assert len(scrubber.mapping({str(n): n for n in range(10_000)})) == 500

    cyclic = {"name": "loop"}
    cyclic["self"] = cyclic
    assert scrubber.mapping(cyclic)["self"]["self"]["name"] == "loop"


@pytest.mark.parametrize("text, expected", [
    ("nothing to see here", "nothing to see here"),
    ("mail bob.smith+shop@example.co.uk now", f"mail {F} now"),
    (f"card {VISA} declined", f"card {F} declined"),
    ("card 4111 1111 1111 1111 declined", f"card {F} declined"),
    ("card 4111-1111-1111-1111 declined", f"card {F} declined"),
    (f"id {NOT_LUHN} and order {ORDER_NUMBER}", f"id {NOT_LUHN} and order {ORDER_NUMBER}"),
    ("phone 555-0100, year 2024, 12345678901234567890123", "phone 555-0100, year 2024, 12345678901234567890123"),
    ("Authorization: Bearer abcdef123456.x-y", f"Authorization: Bearer {F}"),
    ("Basic dXNlcjpwYXNz", f"Basic {F}"),
    ("Basic usage and basic information", "Basic usage and basic information"),
    ("expected Bearer token", "expected Bearer token"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl end", f"jwt {F} end"),
    ("could not connect to postgres://app:pw@db/shop", f"could not connect to postgres://{F}@db/shop"),
    ("connect(host=db, password=hunter2, user=bob)", f"connect(host=db, password={F}, user=bob)"),
    ("{'password': 'hunter2', 'user': 'bob'}", f"{{'password': '{F}', 'user': 'bob'}}"),
    ('{"api_key": "k-1", "n": 1}', f'{{"api_key": "{F}", "n": 1}}'),
    ("kwargs token=b'xyz' ok", f"kwargs token=b'{F}' ok"),
    ("Unexpected token: '}'", "Unexpected token: '}'"),
    ("x == 5 and author=me", "x == 5 and author=me"),
    ("", ""),
])
def test_text(text, expected):
    assert scrubber.text(text) == expected


@pytest.mark.parametrize("line, expected", [
    ('    password = "hunter2"', f'    password = "{F}"'),
    ("API_KEY='sk_live_abcdef123'", f"API_KEY='{F}'"),
    ('    if password == "hunter2":', f'    if password == "{F}":'),
    ("    if token != 'abc123':", f"    if token != '{F}':"),
    ("    db_password := 'hunter2'", f"    db_password := '{F}'"),
    ('SECRET_KEY: str = "django-insecure-xyz"', f'SECRET_KEY: str = "{F}"'),
    ("password: str | None = rb'x'", f"password: str | None = rb'{F}'"),
    ("token: Optional[str] = None", f"token: Optional[str] = {F}"),
    ('os.environ["API_TOKEN"] = "tok_123456"', f'os.environ["API_TOKEN"] = "{F}"'),
    ("SECRET_KEY = os.environ.get('SECRET_KEY', 'dev-insecure')",
     f"SECRET_KEY = os.environ.get('SECRET_KEY', '{F}')"),
    ("    kwargs.setdefault('password', 'hunter2')", f"    kwargs.setdefault('password', '{F}')"),
    ("    self.client_secret = b'xyz'", f"    self.client_secret = b'{F}'"),
    ("    pwd = f'{base}-hunter2'", f"    pwd = f'{F}'"),
    ('PASSWORD = """hunter2"""', f'PASSWORD = """{F}"""'),
    ("    secret = ('hunter2')", f"    secret = {F}"),
    ("    SECRET = (\n        'hunter2'\n    )", f"    SECRET = (\n        '{F}'\n    )"),
    ("PRIVATE_KEY = '''\nMIIEv\nQIBAD\n'''\nx = 1", f"PRIVATE_KEY = '''{F}\n\n\n'''\nx = 1"),
    ("password = 'a line cut sho", f"password = '{F}"),
    ('    headers = {"Authorization": "Bearer abcdefgh12345678"}', f'    headers = {{"Authorization": "{F}"}}'),
    ("    call(auth=('bob', 'x'), headers=[('Authorization', 'Basic dXNlcjpwYXNz')])",
     f"    call(auth={F}, headers=[('Authorization', '{F}')])"),
    ('    card = "4111 1111 1111 1111"', f'    card = "{F}"'),
    ("    user = authenticate(username=u, password=pw)", f"    user = authenticate(username=u, password={F})"),
    # Code that holds no secret stays readable: calls, other names, prose.
    ("    token = request.headers.get('X-Token')", "    token = request.headers.get('X-Token')"),
    ("    password = getpass()", "    password = getpass()"),
    ("    total = price * quantity  # per item", "    total = price * quantity  # per item"),
    ("    raise ValueError('bad value')", "    raise ValueError('bad value')"),
    ("missing fields: ['password', 'username']", "missing fields: ['password', 'username']"),
    ("    author: str = 'Jane'", "    author: str = 'Jane'"),
])
def test_source_lines(line, expected):
    """Secrets as code writes them, for the source lines of error events."""
    assert scrubber.text(line) == expected


def test_text_redaction_can_be_turned_off():
    quiet = Scrubber(redact_patterns=False)
    assert quiet.text("bob@example.com") == "bob@example.com"
    assert quiet.mapping({"password": "x", "note": "bob@example.com"}) == {
        "password": F, "note": "bob@example.com"}


@pytest.mark.parametrize("method", ["headers", "mapping", "query_string", "url", "text"])
@pytest.mark.parametrize("odd", [None, 42, b"pass=1", object(), float("nan"), ["a"], {"a": 1}])
def test_odd_input_never_raises(method, odd):
    getattr(scrubber, method)(odd)


@pytest.mark.parametrize("text", [
    "a" * 200_000 + "@",
    "a@" * 100_000,
    "1" * 200_000,
    "1 " * 100_000,
    "x=" * 100_000,
    "'password': '" + "\\" * 100_000,
    "eyJ" * 100_000,
    "Bearer " * 100_000,
])
def test_pathological_text_stays_linear(text):
    started = time.perf_counter()
    scrubber.text(text)
    assert time.perf_counter() - started < 2.0
