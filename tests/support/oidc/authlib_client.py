"""A confidential relying party built on Authlib, the way a Python app (Flask, Django) uses it:
discovery, an authorization URL with PKCE (S256) and a nonce, the code exchange with
client_secret_post, the ID token checked against the published keys with Authlib's own JWT and
OpenID Connect claim rules, userinfo, a refresh, revocation. The test drives the browser part:
this prints the authorization URL, reads back the URL the browser was sent to, and prints what
it learned as one JSON line.

Usage: python authlib_client.py ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI
"""

import json
import secrets
import sys

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken

issuer, client_id, client_secret, redirect_uri = sys.argv[1:5]
metadata = requests.get(issuer + "/.well-known/openid-configuration", timeout=10).json()
assert metadata["issuer"] == issuer, metadata["issuer"]

session = OAuth2Session(
    client_id,
    client_secret,
    scope="openid email profile offline_access",
    redirect_uri=redirect_uri,
    token_endpoint_auth_method="client_secret_post",
    revocation_endpoint_auth_method="client_secret_post",
    code_challenge_method="S256",
)
verifier = secrets.token_urlsafe(48)
nonce = secrets.token_urlsafe(16)
url, state = session.create_authorization_url(metadata["authorization_endpoint"], nonce=nonce, code_verifier=verifier)
print(json.dumps({"authorize": url}), flush=True)

callback = sys.stdin.readline().strip()
token = session.fetch_token(
    metadata["token_endpoint"], authorization_response=callback, code_verifier=verifier, state=state
)
keys = JsonWebKey.import_key_set(requests.get(metadata["jwks_uri"], timeout=10).json())
claims = jwt.decode(
    token["id_token"],
    keys,
    claims_cls=CodeIDToken,
    claims_options={"iss": {"essential": True, "values": [issuer]}},
    claims_params={"nonce": nonce, "client_id": client_id},
)
claims.validate()
userinfo = session.get(metadata["userinfo_endpoint"], timeout=10).json()
refreshed = session.refresh_token(metadata["token_endpoint"], refresh_token=token["refresh_token"])
session.revoke_token(
    metadata["revocation_endpoint"], token=refreshed["refresh_token"], token_type_hint="refresh_token"
)
try:
    session.refresh_token(metadata["token_endpoint"], refresh_token=refreshed["refresh_token"])
    after_revocation = "accepted"
except OAuthError as error:
    after_revocation = error.error
print(
    json.dumps(
        {
            "claims": dict(claims),
            "userinfo": userinfo,
            "refreshed": refreshed["access_token"] != token["access_token"],
            "afterRevocation": after_revocation,
        }
    ),
    flush=True,
)
