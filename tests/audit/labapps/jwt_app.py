"""DELIBERATELY INSECURE: the lab's Part 2 API, as the lab wrote it (Flask-JWT-Extended), kept as a fixture for
`sessionward audit`. Never deploy this: plain HTTP, Flask's interactive debugger, a guessable signing key,
no way to revoke a token.

Usage: python jwt_app.py PORT   (plain HTTP on 127.0.0.1)
"""

import sys
from datetime import timedelta

from flask import Flask, jsonify, request
from flask_jwt_extended import JWTManager, create_access_token, get_jwt_identity, jwt_required

app = Flask(__name__)
app.config["JWT_SECRET_KEY"] = "super-secret"  # Change this!
app.config["JWT_ACCESS_TOKEN_EXPIRES"] = timedelta(minutes=15)
jwt = JWTManager(app)


@app.route("/login", methods=["POST"])
def login():
    username = request.json.get("username", None)
    password = request.json.get("password", None)
    if username != "apiuser" or password != "password123":
        return jsonify({"msg": "Bad username or password"}), 401
    access_token = create_access_token(identity=username)
    return jsonify(access_token=access_token)


@app.route("/profile", methods=["GET"])
@jwt_required()
def profile():
    current_user = get_jwt_identity()
    return jsonify(logged_in_as=current_user), 200


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), debug=True, use_reloader=False)
