"""The seed's Flask application (../shared/seed/: "HTTPS with python + flask"), its two routes as
the post has them, plus /headers, which echoes the request headers it received so a test can see
what the front door sent. Plain HTTP on loopback: the server in front does the TLS.

Usage: python seed_app.py [PORT]   (0, the default, picks a free port; the first line printed
is "PORT <n>")
"""

import json
import sys

from flask import Flask, Response, request

app = Flask(__name__)


@app.route("/login")
def hello():
    return "Hello World!"


@app.route("/login1", methods=["POST"])
def login():
    username = request.form.get("username")
    password = request.form.get("password")
    login_config = {"name": "pwd1"}
    if username in login_config.keys():
        if password == login_config[username]:
            return Response(json.dumps(True), status=200, mimetype="application/json")
    return Response(json.dumps(False), status=200, mimetype="application/json")


@app.route("/headers")
def headers():
    """Not in the post: every header received, as [name, value] pairs in order."""
    return Response(json.dumps(list(request.headers.items())), mimetype="application/json")


if __name__ == "__main__":
    from werkzeug.serving import make_server

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    # The post listened on 0.0.0.0 with TLS; behind the front door it is loopback and plain.
    server = make_server("127.0.0.1", port, app, threaded=True)
    print(f"PORT {server.port}", flush=True)
    server.serve_forever()
