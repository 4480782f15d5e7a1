"""The API contract, fuzzed: starts a fresh daehwa with two registered users and a
few rooms, checks the served OpenAPI document with openapi-spec-validator, and runs
Schemathesis over every operation of it. Exits non-zero on any failure, on a server
log that shows a panic, or on a server that does not shut down cleanly.

    python tests/contract/run.py [--bin target/debug/daehwa] [--max-examples N]

Run it from a venv with tests/contract/requirements.txt (tests/run.sh does).
"""

import argparse
import os
import pathlib
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

import requests

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
ADMIN_TOKEN = "contract-admin-token-0123456789"
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)


def start(binary, workdir):
    config = workdir / "daehwa.toml"
    config.write_text(
        f"""
[storage]
path = "{workdir / 'data'}"
[limits]
# The fuzzer logs in and sends far faster than people: limits it would only hit.
login_attempts_per_minute = 1000000
address_login_attempts_per_minute = 1000000
registrations_per_hour = 1000000
room_password_attempts_per_minute = 1000000
rooms_per_hour = 1000000
messages_per_second = 1000000.0
message_burst = 1000000
[admin]
token = "{ADMIN_TOKEN}"
"""
    )
    log = open(workdir / "server.log", "w")
    server = subprocess.Popen(
        [str(binary), "serve", "--config", str(config), "--bind", "127.0.0.1:0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RUST_LOG": "info", "NO_COLOR": "1"},
    )
    found = threading.Event()
    address = []

    def drain():
        # Reads stderr for the life of the process, so the pipe never fills.
        for line in server.stderr:
            log.write(line)
            log.flush()
            match = re.search(r"listening.*addr=(\S+)", line)
            if match and not found.is_set():
                address.append(match.group(1))
                found.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    if not found.wait(20):
        server.kill()
        sys.exit(f"daehwa did not start; see {workdir / 'server.log'}")
    return server, reader, f"http://{address[0]}"


def setup(base):
    """Alice (1) owns the public room 1, where Bob (2) is, with a few messages; a
    protected room 2 and a private room 3; room 4, hers alone, and room 5, with Bob.
    The document's examples aim each destructive operation at something of its own,
    so that whichever runs first, the others still reach their success path: leaving
    room 4, handing room 5 to Bob, inviting user 7 to room 3, and in room 1 kicking
    user 3, banning 4, muting 5, making 6 admin, lifting the ban of 8 and the mute
    of 9, making admin 10 a member again."""

    def call(method, path, token=None, **kwargs):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        reply = requests.request(method, base + path, headers=headers, timeout=10, **kwargs)
        reply.raise_for_status()
        return reply.json() if reply.content else None

    def register(name):
        return call("POST", "/api/auth/register", json={"username": name, "password": "correct horse"})

    alice, bob = register("alice"), register("bob")
    assert (alice["userId"], bob["userId"]) == (1, 2), (alice, bob)
    others = [register(f"user{n}") for n in range(3, 11)]
    assert [u["userId"] for u in others] == list(range(3, 11)), others
    room = call("POST", "/api/chatrooms/new", alice["token"], json={"chatType": "public", "chatName": "general"})
    assert room["chatSeq"] == 1, room
    for user in [bob] + [u for u in others if u["userId"] not in (7, 8)]:
        call("PUT", "/api/chatrooms/join/1", user["token"], json={"chatSeq": 1})
    call("POST", "/api/chatrooms/1/ban/8", alice["token"])
    call("POST", "/api/chatrooms/1/mute/9", alice["token"], json={"minutes": 60})
    call("PUT", "/api/chatrooms/1/admins/10", alice["token"])
    for n in range(3):
        call("POST", "/api/chatrooms/1/messages", alice["token"], json={"content": f"hello {n}"})
    call("POST", "/api/chatrooms/1/messages", bob["token"], json={"content": "hi"})
    call("POST", "/api/chatrooms/new", alice["token"],
         json={"chatType": "protected", "chatName": "secret", "password": "open sesame"})
    call("POST", "/api/chatrooms/new", alice["token"], json={"chatType": "private", "chatName": "hidden"})
    call("POST", "/api/chatrooms/new", alice["token"], json={"chatType": "public", "chatName": "to leave"})
    handover = call("POST", "/api/chatrooms/new", alice["token"], json={"chatType": "public", "chatName": "handover"})
    assert handover["chatSeq"] == 5, handover
    call("PUT", "/api/chatrooms/join/5", bob["token"], json={"chatSeq": 5})
    return alice["token"]


def print_statuses(logs):
    """What the server answered, per route: shows which outcomes the run reached."""
    seen = {}
    for route, status in re.findall(r'route=([A-Z]+ \S+) status=(\d+)', logs):
        seen.setdefault(route, {}).setdefault(status, 0)
        seen[route][status] += 1
    print("== responses per route (status: count)")
    for route in sorted(seen):
        counts = ", ".join(f"{s}: {n}" for s, n in sorted(seen[route].items()))
        print(f"   {route:55} {counts}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default=str(ROOT / "target" / "debug" / "daehwa"))
    parser.add_argument("--max-examples", type=int, default=25,
                        help="test cases per operation and phase (default 25)")
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--document", help="fuzz with this file instead of the served document "
                        "(to try an edit of docs/openapi.json without rebuilding the server)")
    args = parser.parse_args()
    venv_bin = pathlib.Path(sys.executable).parent

    with tempfile.TemporaryDirectory(prefix="daehwa-contract-") as tmp:
        workdir = pathlib.Path(tmp)
        server, reader, base = start(args.bin, workdir)
        failures = []
        try:
            token = setup(base)

            started = time.monotonic()
            document = workdir / "openapi.json"
            document.write_bytes(requests.get(base + "/api/openapi.json", timeout=10).content)
            validated = subprocess.run([str(venv_bin / "openapi-spec-validator"), str(document)])
            if validated.returncode != 0:
                failures.append("openapi-spec-validator refused the served document")
            print(f"== openapi-spec-validator: {time.monotonic() - started:.1f} s", flush=True)

            started = time.monotonic()
            env = {
                **os.environ,
                "SCHEMATHESIS_HOOKS": "hooks",
                "PYTHONPATH": str(HERE),
                "DAEHWA_URL": base,
                "DAEHWA_TOKEN": token,
                "DAEHWA_ADMIN_TOKEN": ADMIN_TOKEN,
            }
            location = [str(pathlib.Path(args.document).resolve()), "--url", base] if args.document \
                else [base + "/api/openapi.json"]
            fuzzed = subprocess.run(
                [
                    str(venv_bin / "schemathesis"), "run", *location,
                    "--checks", CHECKS,
                    "--phases", "examples,coverage,fuzzing",
                    "--max-examples", str(args.max_examples),
                    "--seed", str(args.seed),
                    # One worker: with two threads, Hypothesis parses sources with `ast`
                    # in both at once, and CPython before 3.11.8 keeps the AST
                    # constructor's recursion depth in shared state, so a run could
                    # die of "SystemError: AST constructor recursion depth mismatch"
                    # (cpython#106905) — a crash of the tool, not a finding.
                    "--workers", "1",
                    "--request-timeout", "20",
                    "--suppress-health-check", "all",
                    "--no-shrink",
                ],
                env=env,
                cwd=workdir,
            )
            if fuzzed.returncode != 0:
                failures.append(f"Schemathesis found failures (exit {fuzzed.returncode})")
            print(f"== schemathesis: {time.monotonic() - started:.1f} s", flush=True)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                code = server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                code = "killed after 30 s"
            reader.join(5)
        logs = (workdir / "server.log").read_text()
        print_statuses(logs)
        if code != 0:
            failures.append(f"the server did not shut down cleanly: exit {code}")
        if "panicked" in logs:
            failures.append("the server panicked:\n" + "\n".join(l for l in logs.splitlines() if "panicked" in l))
        if failures:
            print("\n".join(["", "contract run FAILED:"] + failures), file=sys.stderr)
            sys.exit(1)
    print("contract run OK: the served document is valid, Schemathesis found no failure")


if __name__ == "__main__":
    main()
