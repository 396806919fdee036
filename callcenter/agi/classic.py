"""Classic AGI entry point: the call-outcome hook for sites that cannot reach our FastAGI server (edge).

Asterisk runs it per call from the hang-up handler, over stdin/stdout::

    same => n,AGI(callcenter-outcome,http://callcenter.example:8080)

(``callcenter-outcome`` is this package's console script, linked into Asterisk's ``agi-bin``; or
``python -m callcenter.agi.classic``.) It reads the same variables as the FastAGI ``call-outcome``
script, in one command, with pyst2's ``asterisk.agi`` (only that module of pyst2 works on Python 3),
and hands them to ``POST /api/v1/agi/call-outcome``: the service decides and stores the outcome. It
never touches the database.

The API token is read from a file (``--token-file``, default :data:`DEFAULT_TOKEN_FILE`), never
from the command line: AGI arguments show in ``ps`` and in Asterisk's verbose log. Exit status 0
once the outcome is recorded, 1 otherwise (``AGISTATUS=FAILURE``). Nothing it prints holds the token
or the caller's data.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import urllib.error
import urllib.request
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Final, TextIO

from callcenter.agi.outcome import READ_VARIABLES
from callcenter.agi.protocol import AgiProtocolError, decode_read, new_nonce, read_expression
from callcenter.asterisk_names import AGI_CLASSIC_OUTCOME, VAR_OUTCOME

#: Where the token is read when ``--token-file`` is not given (readable by the asterisk user only).
DEFAULT_TOKEN_FILE: Final = "/etc/asterisk/callcenter-agi.token"
DEFAULT_API_URL: Final = "http://127.0.0.1:8080"
#: The API path the variables are posted to.
API_PATH: Final = "/api/v1/agi/call-outcome"


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=AGI_CLASSIC_OUTCOME,
        description="Report a call's outcome to the callcenter API (run by Asterisk's AGI()).",
    )
    parser.add_argument("api_url", nargs="?", default=DEFAULT_API_URL, help="the API base URL")
    parser.add_argument("--token-file", default=DEFAULT_TOKEN_FILE, help="file holding the API token")
    parser.add_argument("--timeout-s", type=float, default=5.0, help="HTTP timeout in seconds")
    return parser.parse_args(argv)


def read_token(path: str) -> str:
    """The token in ``path`` (surrounding blanks removed). :raises OSError, ValueError:"""
    token = Path(path).read_text(encoding="utf-8").strip()
    if not token or any(c.isspace() for c in token):
        raise ValueError(f"{path} does not hold one token")
    return token


def post_variables(api_url: str, token: str, variables: dict[str, str], *, timeout_s: float) -> str:
    """POST the variables; return the outcome the service recorded.

    :raises urllib.error.URLError: the API could not be reached or answered an error.
    :raises ValueError: the answer is not what the API documents.
    """
    request = urllib.request.Request(
        api_url.rstrip("/") + API_PATH,
        data=json.dumps({"variables": variables}).encode("utf-8"),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        body = json.loads(response.read().decode("utf-8"))
    outcome = body.get("outcome") if isinstance(body, dict) else None
    if not isinstance(outcome, str):
        raise ValueError("the API answered without an outcome")
    return outcome


def main(
    argv: Sequence[str] | None = None, *, stdin: TextIO | None = None, stdout: TextIO | None = None
) -> int:
    """Run one classic AGI session on ``stdin``/``stdout`` (the process's by default)."""
    args = _arguments(argv)
    if not args.api_url.startswith(("http://", "https://")):
        print(f"{AGI_CLASSIC_OUTCOME}: the API URL must be http:// or https://", file=sys.stderr)
        return 1
    # pyst2 is old: keep its deprecation warnings out of Asterisk's log, and only its own.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"asterisk(\.|$)")
    from asterisk.agi import AGI  # type: ignore[import-untyped]

    # pyst2 echoes the environment and every command to stderr, which Asterisk logs: caller data.
    agi = AGI(stdin=stdin or sys.stdin, stdout=stdout or sys.stdout, stderr=io.StringIO())
    try:
        token = read_token(args.token_file)
        names, nonce = tuple(READ_VARIABLES.values()), new_nonce()
        read = decode_read(agi.get_full_variable(read_expression(names, nonce)), names, nonce)
        variables = {key: read[name] for key, name in READ_VARIABLES.items()}
        outcome = post_variables(args.api_url, token, variables, timeout_s=args.timeout_s)
    except (OSError, ValueError, AgiProtocolError) as exc:
        # urllib's errors are OSErrors; HTTPError's text names the status, never the token.
        print(f"{AGI_CLASSIC_OUTCOME}: outcome not recorded: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # pyst2's AGIError tree: the channel or Asterisk went away
        print(f"{AGI_CLASSIC_OUTCOME}: AGI failed: {type(exc).__name__}", file=sys.stderr)
        return 1
    try:
        agi.set_variable(VAR_OUTCOME, outcome)
    except Exception as exc:  # informational only: the outcome is stored
        print(f"{AGI_CLASSIC_OUTCOME}: {VAR_OUTCOME} not set: {type(exc).__name__}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
