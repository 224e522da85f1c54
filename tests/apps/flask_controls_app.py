"""A Flask app for the per-request controls, users and logging tests. Like flask_app.py it
imports nothing of spyglass: the controls are WSGI environ keys, set here by the app
(``/grouped``) or by whatever sits in front of it (the test client's environ)."""
import logging
import time

from flask import Flask, g, request
from flask_login import LoginManager, UserMixin, current_user, login_user

app = Flask(__name__)
app.secret_key = "test-only-not-secret"
login_manager = LoginManager(app)
shop_log = logging.getLogger("shop")
# The app shows the sensor's warnings (by default the `spyglass` logger prints nothing).
logging.getLogger("spyglass").addHandler(logging.StreamHandler())


class Member(UserMixin):
    def __init__(self, user_id, username, email):
        self.id, self.username, self.email = user_id, username, email


MEMBERS = {"m-1": Member("m-1", "mia", "@".join(("mia", "example.com")))}


@login_manager.user_loader
def load_member(user_id):
    return MEMBERS.get(user_id)


@app.route("/ok")
def ok():
    return "ok"


@app.route("/fail")
def fail():
    basket = ["apple", "pear"]
    api_token = "tok-" + "LOCAL-SECRET"  # as a local only, not in the source
    raise RuntimeError(f"failure {request.args.get('n', '')}".strip() + " " + api_token[:0] + basket[0])


@app.route("/grouped")
def grouped():
    request.environ["spyglass.group_string"] = "set-in-view"
    request.environ["spyglass.view_name"] = "grouped-view"
    raise LookupError("grouped " + request.args.get("n", ""))


@app.route("/slow")
@app.route("/downloads/<name>")
def slow(name=None):
    time.sleep(float(request.args.get("s", "0.25")))
    return "slow"


@app.route("/health")
def health():
    return "ok"


@app.route("/log")
def log_something():
    shop_log.debug("debug line")
    shop_log.info("info line %s", request.args.get("n", ""))
    shop_log.warning("warning line %s", request.args.get("n", ""))
    if request.args.get("fail"):
        raise KeyError("log-fail")
    time.sleep(float(request.args.get("s", "0")))
    return "logged"


# -- users ------------------------------------------------------------------------------

@app.route("/login/<member_id>")
def login(member_id):
    login_user(MEMBERS[member_id])
    return "logged in"


@app.route("/member")
def member():
    """Asks for flask-login's current_user, then fails."""
    raise RuntimeError("member page for " + str(current_user.is_authenticated))


@app.route("/anonymous")
def anonymous():
    return "no user asked for"


class Account:
    def __init__(self, pk, username, email):
        self.pk, self.username, self.email = pk, username, email


@app.route("/g-user")
def g_user():
    g.user = Account(31, "gus", "@".join(("gus", "example.com")))  # not in the source shown
    raise RuntimeError("g.user page")


@app.route("/remote-user")
def remote_user():
    raise RuntimeError("remote user page")
