"""Idempotency keys (the ``Idempotency-Key`` header, IETF draft-ietf-httpapi-idempotency-key).

A client that sent a request and lost the answer (a dropped connection, a server killed
mid-request) sends it again with the same key. If the first one was done, the stored answer
comes back and nothing is done twice; if it was not (its transaction never committed), the
request is done now. The key is claimed in the request's own transaction, so it commits
exactly with the work; a second request with the key while the first is under way waits for
it (the primary key's lock), then gets its answer.
"""

import hashlib
import json
import re
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from gridgis.errors import Conflict, InvalidInput
from gridgis.models import AppUser

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces

CLAIM_SQL = text("""
INSERT INTO request_key (app_user_id, key, fingerprint) VALUES (:user, :key, :fingerprint)
ON CONFLICT (app_user_id, key) DO NOTHING RETURNING key
""")
STORED_SQL = text(
    "SELECT fingerprint, response FROM request_key WHERE app_user_id = :user AND key = :key")
ANSWER_SQL = text("UPDATE request_key SET response = CAST(:response AS jsonb) "
                  "WHERE app_user_id = :user AND key = :key")


def fingerprint(*parts: bytes | str) -> str:
    """Return a digest of what makes a request the same request (path, parameters, body)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()


def claim(session: Session, user: AppUser, key: str, print_: str) -> Any | None:
    """Claim ``key`` for this request in the session's transaction and return None (go on,
    then ``answer``), or return the answer stored by the request that used it first.

    Raise InvalidInput for a malformed key or one used for a different request, and Conflict
    if the first request is somehow unanswered (it committed no answer)."""
    if not KEY_PATTERN.match(key):
        raise InvalidInput(f"the {HEADER} header must be 1 to 200 printable ASCII characters")
    params = {"user": user.id, "key": key, "fingerprint": print_}
    if session.execute(CLAIM_SQL, params).first() is not None:
        return None
    stored = session.execute(STORED_SQL, params).one()
    if stored.fingerprint != print_:
        raise InvalidInput(f"{HEADER} {key} was used for a different request: use a new key")
    if stored.response is None:
        raise Conflict(f"the request with {HEADER} {key} has no answer yet: try again")
    return stored.response


def answer(session: Session, user: AppUser, key: str, response: Any) -> None:
    """Store the answer to a claimed key, in the transaction that does the work."""
    session.execute(ANSWER_SQL, {"user": user.id, "key": key,
                                 "response": json.dumps(response, default=str)})
