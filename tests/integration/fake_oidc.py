"""A small OpenID Connect provider over real local HTTP, built on joserfc (Authlib's JOSE).

It serves what a relying party uses: discovery (``/.well-known/openid-configuration``), the
authorization endpoint (code flow; PKCE S256 required, as strict providers do), the token
endpoint (client_secret_basic, one use per code, the PKCE verifier checked) and the JWKS. The
"browser" step is ``authorize(url)``: it signs in whoever ``identity`` names and returns the
callback URL with ``code`` and ``state``. ``tamper`` changes the next ID token's claims, and
``sign_with_foreign_key`` signs it with a key the JWKS does not hold, for the refusal tests.

(The ``oidc-provider-mock`` package needs Python 3.12 from its current releases and cannot mint
an expired, a wrongly signed or a wrong-nonce ID token, which the refusal tests need.)
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests
from flask import Flask, jsonify, redirect, request
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from werkzeug.serving import make_server

CLIENT_ID = "booking-test-client"
CLIENT_SECRET = "booking-test-client-secret-0123456789"


class FakeOidcProvider:
    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-key-1", "use": "sig"})
        # Same kid as the real key: a token signed with it fails on the signature itself.
        self.foreign_key = RSAKey.generate_key(2048, parameters={"kid": "test-key-1"})
        self.identity: dict[str, Any] = {"sub": "user-1", "name": "Test User"}
        self.tamper: dict[str, Any] = {}
        self.sign_with_foreign_key = False
        self.token_status = 200  # another status: the token endpoint fails with it
        self.codes: dict[str, dict[str, Any]] = {}
        self.token_requests = 0
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.issuer = ""

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> FakeOidcProvider:
        self._server = make_server("127.0.0.1", 0, self._app(), threaded=True)
        self.issuer = f"http://127.0.0.1:{self._server.server_port}/realms/test"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-oidc", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def reset(self) -> None:
        self.identity = {"sub": "user-1", "name": "Test User"}
        self.tamper = {}
        self.sign_with_foreign_key = False
        self.token_status = 200

    # -- the browser's part ----------------------------------------------------------------------

    def authorize(self, url: str) -> str:
        """Follow the relying party's redirect as a browser would; the callback URL it gets."""
        answer = requests.get(url, allow_redirects=False, timeout=10)
        if answer.status_code != 302:
            raise AssertionError(f"authorize answered {answer.status_code}: {answer.text}")
        return answer.headers["Location"]

    # -- the server ------------------------------------------------------------------------------

    def _app(self) -> Flask:
        app = Flask("fake_oidc")
        prefix = "/realms/test"

        # /realms/alias serves the same document, which names another issuer than the one asked.
        @app.get(f"{prefix}/.well-known/openid-configuration")
        @app.get("/realms/alias/.well-known/openid-configuration")
        def discovery() -> Any:
            return jsonify(
                issuer=self.issuer,
                authorization_endpoint=f"{self.issuer}/authorize",
                token_endpoint=f"{self.issuer}/token",
                jwks_uri=f"{self.issuer}/jwks",
                response_types_supported=["code"],
                subject_types_supported=["public"],
                id_token_signing_alg_values_supported=["RS256"],
                code_challenge_methods_supported=["S256"],
                token_endpoint_auth_methods_supported=["client_secret_basic"],
                scopes_supported=["openid", "email", "profile"],
            )

        @app.get(f"{prefix}/jwks")
        def jwks() -> Any:
            return jsonify(KeySet([self.key]).as_dict(private=False))

        @app.get(f"{prefix}/authorize")
        def authorize() -> Any:
            args = request.args
            problems = []
            if args.get("client_id") != CLIENT_ID:
                problems.append("client_id")
            if args.get("response_type") != "code":
                problems.append("response_type")
            if "openid" not in args.get("scope", "").split():
                problems.append("scope")
            if args.get("code_challenge_method") != "S256" or not args.get("code_challenge"):
                problems.append("pkce")
            if not args.get("state") or not args.get("redirect_uri"):
                problems.append("state/redirect_uri")
            if problems:
                return jsonify(error="invalid_request", bad=problems), 400
            code = secrets.token_urlsafe(24)
            with self._lock:
                self.codes[code] = {
                    "identity": dict(self.identity),
                    "nonce": args.get("nonce"),
                    "challenge": args["code_challenge"],
                    "redirect_uri": args["redirect_uri"],
                }
            query = urlencode({"code": code, "state": args["state"]})
            return redirect(f"{args['redirect_uri']}?{query}", 302)

        @app.post(f"{prefix}/token")
        def token() -> Any:
            self.token_requests += 1
            if self.token_status != 200:
                return "upstream trouble at 10.0.0.7", self.token_status
            auth = request.authorization
            if auth is None or (auth.username, auth.password) != (CLIENT_ID, CLIENT_SECRET):
                return jsonify(error="invalid_client"), 401
            form = request.form
            with self._lock:
                grant = self.codes.pop(form.get("code", ""), None)
            if form.get("grant_type") != "authorization_code" or grant is None:
                return jsonify(error="invalid_grant"), 400
            if form.get("redirect_uri") != grant["redirect_uri"]:
                return jsonify(error="invalid_grant", error_description="redirect_uri"), 400
            verifier = form.get("code_verifier", "")
            digest = hashlib.sha256(verifier.encode()).digest()
            challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if not verifier or challenge != grant["challenge"]:
                return jsonify(error="invalid_grant", error_description="PKCE"), 400
            now = int(time.time())
            claims: dict[str, Any] = {
                "iss": self.issuer,
                "aud": CLIENT_ID,
                "iat": now,
                "exp": now + 300,
                "nonce": grant["nonce"],
                **grant["identity"],
            }
            claims.update(self.tamper)
            claims = {k: v for k, v in claims.items() if v is not None}
            key = self.foreign_key if self.sign_with_foreign_key else self.key
            id_token = jwt.encode({"alg": "RS256", "kid": "test-key-1"}, claims, key)
            return jsonify(
                access_token=secrets.token_urlsafe(24),
                token_type="Bearer",
                expires_in=300,
                id_token=id_token,
            )

        return app


def callback_path(callback_url: str, **replace: str) -> str:
    """The path and query of the callback URL, with query parameters replaced."""
    parts = urlsplit(callback_url)
    query = dict(parse_qsl(parts.query))
    query.update(replace)
    return f"{parts.path}?{urlencode(query)}"
