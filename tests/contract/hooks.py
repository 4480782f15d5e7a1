"""Schemathesis hooks for the contract run (tests/contract/run.py).

Every request is made as alice (user 1, owner of room 1, where bob, user 2, is a
member), with the token run.py got for her, so that the examples in the document
reach real rooms and users. Two operations get another token: logging out revokes the
token it is made with, so it gets a fresh one of its own (or the rest of the run would
be 401s); the backup takes the server's admin token.
"""

import os

import requests
import schemathesis

BASE = os.environ["DAEHWA_URL"]
TOKEN = os.environ["DAEHWA_TOKEN"]
ADMIN_TOKEN = os.environ["DAEHWA_ADMIN_TOKEN"]


@schemathesis.auth(refresh_interval=None)
class Alice:
    def get(self, case, ctx):
        path = ctx.operation.path
        if path == "/api/auth/logout":
            reply = requests.post(
                f"{BASE}/api/auth/login",
                json={"username": "alice", "password": "correct horse"},
                timeout=10,
            )
            reply.raise_for_status()
            return reply.json()["token"]
        if path == "/api/admin/backup":
            return ADMIN_TOKEN
        return TOKEN

    def set(self, case, data, ctx):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
