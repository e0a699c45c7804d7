"""The experiment server: a FastAPI app over a bundle and a database.

Endpoints (every body is a pydantic model that forbids unknown keys):

``GET /`` the jsPsych page; ``GET /static/...`` its scripts (vendored, no CDN);
``GET /api/stimuli/{id}`` a stimulus, looked up by id in the bundle manifest
(no request path reaches the file system); ``POST /api/session`` start or
resume (one row per recruitment id, ever); ``POST /api/consent``;
``POST /api/trials`` save one answer (idempotent on participant and trial
index; the server scores it and decides screening); ``POST /api/complete``
the completion code and redirect, once every trial is saved;
``GET /api/admin/summary`` and ``GET /api/admin/export/{table}`` with
``Authorization: Bearer TOKEN``.

Requests over ``max_body_bytes`` are refused with 413 before they are read in
full; no CORS headers are sent (cross-origin pages cannot read answers).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from metamers.experiments.bundle import STIMULI, load_manifest
from metamers.experiments.db import Participant, Trial, engine_of, now, open_database
from metamers.experiments.design import list_for, public_trial, timeline

__all__ = ["create_app"]

ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
STIMULUS_PATTERN = r"^[0-9a-f]{16}$"
TOKEN_PATTERN = r"^[0-9a-f]{64}$"
MTURK_HOSTS = ("https://www.mturk.com", "https://workersandbox.mturk.com")
GATES = {"headphone": "headphone_correct", "screening": "screening_correct"}
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: data:; "
        "style-src 'self' 'unsafe-inline'; font-src 'self' data:; script-src 'self'; connect-src 'self'; "
        "frame-ancestors 'none'; form-action 'self' https:"
    ),
}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Scalar = StrictFloat | StrictInt | StrictStr | bool | None


class SessionRequest(_Body):
    """Start or resume: recruitment parameters from the page URL."""

    source: Literal["prolific", "mturk", "anonymous"]
    participant_id: Annotated[StrictStr, Field(pattern=ID_PATTERN)] | None = None
    study_id: Annotated[StrictStr, Field(pattern=ID_PATTERN)] | None = None
    session_id: Annotated[StrictStr, Field(pattern=ID_PATTERN)] | None = None
    assignment_id: Annotated[StrictStr, Field(pattern=ID_PATTERN)] | None = None
    hit_id: Annotated[StrictStr, Field(pattern=ID_PATTERN)] | None = None
    submit_to: Annotated[StrictStr, Field(max_length=256)] | None = None
    environment: Annotated[
        dict[Annotated[str, Field(max_length=64)], Scalar], Field(max_length=64)
    ] = {}


class TokenRequest(_Body):
    """A request that only names its session."""

    token: Annotated[StrictStr, Field(pattern=TOKEN_PATTERN)]


class TrialRequest(_Body):
    """One answer, with the timing the browser measured."""

    token: Annotated[StrictStr, Field(pattern=TOKEN_PATTERN)]
    index: Annotated[StrictInt, Field(ge=0, le=100_000)]
    stimulus: Annotated[StrictStr, Field(pattern=STIMULUS_PATTERN)]
    response: Annotated[StrictStr, Field(min_length=1, max_length=128)]
    rt_ms: Annotated[float, Field(ge=0, le=86_400_000)] | None = None
    client_time: Annotated[float, Field(ge=0)] | None = None
    timing: Annotated[dict[Annotated[str, Field(max_length=64)], Scalar], Field(max_length=64)] = {}


class _Limit:
    """ASGI middleware: refuse bodies over ``limit`` bytes (413), declared or streamed.

    The body is read (at most ``limit`` bytes) before the app sees the request,
    so an oversized request changes nothing.
    """

    def __init__(self, app: Callable, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _too_large(send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await _too_large(send)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *_headers()]}
            await send(message)

        await self.app(scope, replay, with_headers)


def _headers() -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]


async def _too_large(send: Callable[[dict], Awaitable[None]]) -> None:
    body = b'{"detail":"request body too large"}'
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), *_headers()],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app(bundle: str | Path, db_url: str, admin_token: str | None = None) -> FastAPI:
    """The ASGI app serving one bundle.

    Parameters
    ----------
    bundle
        A folder written by :func:`metamers.experiments.build_bundle`.
    db_url
        Where answers go (``sqlite:///...`` or ``postgresql://...``).
    admin_token
        The token of the export and admin endpoints; ``None`` disables them.

    Returns
    -------
    fastapi.FastAPI
        The app, for uvicorn.
    """
    bundle = Path(bundle).resolve()
    manifest = load_manifest(bundle)
    sessions = open_database(db_url)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        engine_of(sessions).dispose()

    app = FastAPI(
        title="metamers experiment",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.sessions = sessions
    app.state.manifest = manifest
    app.state.admin_token = admin_token
    static = Path(str(resources.files("metamers.experiments").joinpath("static")))
    app.mount("/static", StaticFiles(directory=static), name="static")
    _routes(app, bundle, manifest, static)
    app.add_middleware(_Limit, limit=manifest["config"]["max_body_bytes"])
    return app


def _routes(
    app: FastAPI,
    bundle: Path,
    manifest: dict[str, Any],
    static: Path,
) -> None:
    config = manifest["config"]
    stimuli = manifest["stimuli"]
    valid = _valid_responses(manifest)

    @app.get("/", response_class=HTMLResponse)
    def index() -> Response:
        return FileResponse(static / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/api/stimuli/{stimulus_id}")
    def stimulus(stimulus_id: Annotated[str, PathParam(pattern=STIMULUS_PATTERN)]) -> Response:
        info = stimuli.get(stimulus_id)
        if info is None:
            raise HTTPException(404, "no such stimulus")
        return FileResponse(bundle / STIMULI / info["file"], headers={"Cache-Control": "private"})

    @app.post("/api/session")
    def start(body: SessionRequest, session: Db, user_agent: str | None = Header(None)) -> dict:
        participant_id = body.participant_id or f"anon-{secrets.token_hex(8)}"
        if body.submit_to is not None and not body.submit_to.startswith(MTURK_HOSTS):
            raise HTTPException(422, "turkSubmitTo must be an MTurk host")
        found = session.scalar(
            select(Participant).where(Participant.participant_id == participant_id)
        )
        if found is None:
            found = _new_participant(session, body, participant_id, user_agent, manifest)
        if found.status not in ("started", "consented"):
            raise HTTPException(409, "this participant id has already taken part in the study")
        return _state(session, found, manifest)

    @app.post("/api/consent")
    def consent(body: TokenRequest, session: Db) -> dict:
        participant = _by_token(session, body.token)
        if participant.status == "started":
            participant.status, participant.consented_at = "consented", now()
            session.commit()
        return {"status": participant.status}

    @app.post("/api/trials")
    def save_trial(body: TrialRequest, session: Db) -> dict:
        participant = _by_token(session, body.token)
        trials = participant.timeline
        if body.index >= len(trials):
            raise HTTPException(422, "no such trial")
        planned = trials[body.index]
        if body.stimulus != planned["stimulus"]:
            raise HTTPException(422, "stimulus does not match the trial")
        if body.response not in valid[planned["phase"]]:
            raise HTTPException(422, "response is not one of the choices")
        existing = session.scalar(
            select(Trial).where(
                Trial.participant_pk == participant.pk, Trial.trial_index == body.index
            )
        )
        if existing is not None:
            if existing.response != body.response:
                raise HTTPException(409, "this trial was already answered differently")
            return _saved(session, participant, planned, existing, config, duplicate=True)
        if participant.status != "consented":
            raise HTTPException(409, f"participant is {participant.status}, not taking trials")
        done = _count(session, participant)
        if body.index != done:
            raise HTTPException(409, f"trial {body.index} out of order; next is {done}")
        row = Trial(
            participant_pk=participant.pk,
            trial_index=body.index,
            phase=planned["phase"],
            stimulus_id=planned["stimulus"],
            item=planned["item"],
            condition=planned["condition"],
            catch=planned["catch"],
            answer=planned["answer"],
            response=body.response,
            correct=body.response.lower() == planned["answer"].lower(),
            rt_ms=body.rt_ms,
            timing=dict(body.timing),
            client_time=body.client_time,
        )
        session.add(row)
        try:
            session.flush()
        except IntegrityError:
            session.rollback()
            return save_trial(body, session)
        _gate(session, participant, body.index, config)
        session.commit()
        return _saved(session, participant, planned, row, config, duplicate=False)

    @app.post("/api/complete")
    def complete(body: TokenRequest, session: Db) -> dict:
        participant = _by_token(session, body.token)
        if participant.status == "consented":
            if _count(session, participant) < len(participant.timeline):
                raise HTTPException(409, "not every trial is saved yet")
            participant.status, participant.finished_at = "complete", now()
            session.commit()
        if participant.status not in ("complete", "screened_out"):
            raise HTTPException(409, f"participant is {participant.status}")
        return _ending(participant, config)

    @app.get("/api/admin/summary")
    def summary(_: Admin, session: Db) -> dict:
        rows = session.execute(
            select(Participant.status, func.count()).group_by(Participant.status)
        ).all()
        return {
            "participants": {status: count for status, count in rows},
            "trials": session.scalar(select(func.count()).select_from(Trial)),
        }

    @app.get("/api/admin/participants/{participant_id}")
    def participant(
        _: Admin,
        participant_id: Annotated[str, PathParam(pattern=ID_PATTERN)],
        session: Db,
    ) -> dict:
        found = session.scalar(
            select(Participant).where(Participant.participant_id == participant_id)
        )
        if found is None:
            raise HTTPException(404, "no such participant")
        return {
            "participant_id": found.participant_id,
            "status": found.status,
            "list_index": found.list_index,
            "saved": _count(session, found),
            "timeline": found.timeline,
        }

    @app.get("/api/admin/export/{table}")
    def export(_: Admin, table: Literal["trials", "participants"], session: Db) -> Response:
        from metamers.experiments.export import participant_table, trial_table

        frame = trial_table(session, manifest) if table == "trials" else participant_table(session)
        return Response(frame.to_csv(index=False), media_type="text/csv")


def _db(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


def _admin(request: Request, authorization: str | None = Header(None)) -> None:
    token = request.app.state.admin_token
    expected = f"Bearer {token}" if token else None
    if expected is None or authorization is None:
        raise HTTPException(401, "admin token required", {"WWW-Authenticate": "Bearer"})
    if not secrets.compare_digest(authorization.encode(), expected.encode()):
        raise HTTPException(403, "wrong admin token")


Db = Annotated[Session, Depends(_db)]
Admin = Annotated[None, Depends(_admin)]


def _valid_responses(manifest: dict[str, Any]) -> dict[str, set[str]]:
    choices = set(manifest["choices"])
    return {
        "headphone": {"1", "2", "3"},
        "practice": choices,
        "screening": choices,
        "main": choices,
    }


def _new_participant(
    session: Session,
    body: SessionRequest,
    participant_id: str,
    user_agent: str | None,
    manifest: dict[str, Any],
) -> Participant:
    participant = Participant(
        participant_id=participant_id,
        token=secrets.token_hex(32),
        source=body.source,
        study_id=body.study_id,
        session_id=body.session_id,
        assignment_id=body.assignment_id,
        hit_id=body.hit_id,
        submit_to=body.submit_to,
        order_seed=secrets.randbelow(2**31),
        user_agent=(user_agent or "")[:512],
        environment=dict(body.environment),
        timeline=[],
    )
    session.add(participant)
    try:
        session.flush()
    except IntegrityError:  # the same id arrived twice at once: use the first
        session.rollback()
        return session.scalars(
            select(Participant).where(Participant.participant_id == participant_id)
        ).one()
    participant.list_index = list_for(participant.pk, manifest)
    participant.timeline = timeline(manifest, participant.list_index, participant.order_seed)
    session.commit()
    return participant


def _by_token(session: Session, token: str) -> Participant:
    participant = session.scalar(select(Participant).where(Participant.token == token))
    if participant is None:
        raise HTTPException(403, "unknown session")
    return participant


def _count(session: Session, participant: Participant) -> int:
    return int(
        session.scalar(
            select(func.count()).select_from(Trial).where(Trial.participant_pk == participant.pk)
        )
        or 0
    )


def _gate(session: Session, participant: Participant, index: int, config: dict) -> None:
    """After the last trial of a headphone check or screening block, pass or let go."""
    trials = participant.timeline
    phase = trials[index]["phase"]
    last = index + 1 == len(trials) or trials[index + 1]["phase"] != phase
    if phase not in GATES or not last:
        return
    rows = session.scalars(
        select(Trial).where(Trial.participant_pk == participant.pk, Trial.phase == phase)
    ).all()
    correct = sum(row.correct for row in rows)
    setattr(participant, GATES[phase], correct)
    need = (
        config["audio"]["headphone_check"]["pass_min"]
        if phase == "headphone"
        else config["screening"]["pass_min"]
    )
    if correct < need:
        participant.status, participant.finished_at = "screened_out", now()


def _saved(
    session: Session,
    participant: Participant,
    planned: dict[str, Any],
    row: Trial,
    config: dict,
    *,
    duplicate: bool,
) -> dict[str, Any]:
    reply: dict[str, Any] = {
        "saved": True,
        "duplicate": duplicate,
        "next_index": _count(session, participant),
        "status": participant.status,
    }
    if planned["phase"] == "practice" and config["practice"]["feedback"]:
        reply["feedback"] = {"correct": row.correct, "answer": planned["answer"]}
    if participant.status == "screened_out":
        reply["ending"] = _ending(participant, config)
    return reply


def _state(session: Session, participant: Participant, manifest: dict[str, Any]) -> dict:
    config = manifest["config"]
    done = _count(session, participant)
    return {
        "token": participant.token,
        "participant_id": participant.participant_id,
        "status": participant.status,
        "next_index": done,
        "trials": [public_trial(t, manifest) for t in participant.timeline[done:]],
        "n_trials": len(participant.timeline),
        "study": {
            "title": config["title"],
            "consent": config["consent"],
            "instructions": config["instructions"],
            "task": manifest["task"],
            "modality": manifest["modality"],
            "choices": manifest["choices"],
            "timing": config["timing"],
            "feedback": config["practice"]["feedback"],
            "fullscreen": config["fullscreen"],
            "masks": manifest["masks"],
            "calibration": manifest["calibration"],
            "image_px": config["image_px"],
        },
    }


def _ending(participant: Participant, config: dict) -> dict[str, Any]:
    completion = config["completion"]
    done = participant.status == "complete"
    code = completion["code"] if done else completion["screened_out_code"]
    redirect = None
    if participant.source == "prolific":
        redirect = completion["prolific_url"].format(code=code)
    elif participant.source == "mturk" and participant.submit_to and participant.assignment_id:
        redirect = (
            f"{participant.submit_to.rstrip('/')}/mturk/externalSubmit?"
            f"assignmentId={participant.assignment_id}&completion={code}"
        )
    return {
        "status": participant.status,
        "code": code,
        "redirect": redirect,
        "debrief": config["debrief"],
    }
