"""An unmodified Flask app: it knows nothing of spyglass."""
from flask import Flask, abort, g, jsonify, request, stream_with_context

app = Flask(__name__)


@app.route("/users/<int:uid>")
def user(uid):
    return jsonify(id=uid, q=request.args.get("q"))


@app.route("/boom")
def boom():
    return 1 / 0


@app.route("/missing")
def missing():
    abort(404)


@app.route("/server-error")
def server_error():
    abort(503)


@app.route("/login", methods=["POST"])
def login():
    g.user = request.form.get("user_id")
    secret = request.form["password"]
    raise ValueError("bad credentials for " + request.form["email"] + " " + secret[:0])


@app.route("/stream")
def stream():
    def generate():
        for i in range(3):
            yield f"chunk {i}\n"
    return app.response_class(stream_with_context(generate()), mimetype="text/plain")


@app.route("/slow")
def slow():
    import time
    time.sleep(float(request.args.get("s", "0.3")))
    return "slow"


@app.route("/log")
def log_something():
    app.logger.warning("careful: user %s did %s", "alice@example.com", "things")
    app.logger.info("not sent")
    try:
        {}["missing"]
    except KeyError:
        app.logger.exception("lookup failed")
    return "logged"


@app.route("/health")
def health():
    return "ok"
