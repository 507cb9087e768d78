"""DELIBERATELY INSECURE: the lab's Part 1 app, as the lab wrote it, kept as a fixture for `sessionward audit`.
Never deploy this. It runs Flask's interactive debugger (remote code execution) and logs out with a GET.

Usage: python session_app.py PORT   (HTTPS with an ad-hoc certificate, on 127.0.0.1)
"""

import sys
from datetime import timedelta

from flask import Flask, redirect, request, session, url_for

app = Flask(__name__)
app.secret_key = "lab-secret-key-change-me"
app.config.update(
    SESSION_COOKIE_HTTPONLY=True,
    SESSION_COOKIE_SECURE=True,
    SESSION_COOKIE_SAMESITE="Lax",
    PERMANENT_SESSION_LIFETIME=timedelta(minutes=30),
)


@app.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "POST":
        username = request.form["username"]
        if username == "admin":
            session.permanent = True
            session["user"] = username
            return redirect(url_for("dashboard"))
        return "Invalid user", 401
    return """
        <form method="post">
            <input type="text" name="username" placeholder="Username">
            <input type="submit" value="Login">
        </form>
    """


@app.route("/dashboard")
def dashboard():
    if "user" in session:
        return f"Welcome {session['user']}! <a href='/logout'>Logout</a>"
    return redirect(url_for("login"))


@app.route("/logout")
def logout():
    session.pop("user", None)
    return redirect(url_for("login"))


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), debug=True, ssl_context="adhoc", use_reloader=False)
