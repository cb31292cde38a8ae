"""What the map's routes may serve, and to whom: every scene and every session's exports are shared under an
unguessable id (never a path), handed to one browser session only, and answered only to the browser that session
belongs to (its rsapp_client cookie, rsapp.ui.routes). A session's scene ids go when it loads other scenes or
ends; an id nobody was given, a path, or another browser's request finds nothing."""

from __future__ import annotations

import secrets
import threading
import weakref

_lock = threading.Lock()
_scenes: dict[str, tuple[str, str | None, object]] = {}  # scene id → (owning session's id, its browser, TileSource)
_sessions: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # session id → Session


def new_id() -> str:
    return secrets.token_urlsafe(18)


def share_session(session_id: str, session) -> None:
    with _lock:
        _sessions[session_id] = session


def session(session_id: str, client: str | None):
    """The session with this id, if the asking browser is its own."""
    with _lock:
        found = _sessions.get(session_id)
    if found is None or (found.client is not None and found.client != client):
        return None
    return found


def why_not(session_id: str, client: str | None) -> str:
    """Why `session` finds nothing, for the log."""
    with _lock:
        found = _sessions.get(session_id)
    if found is None:
        return "no such session (ended, or never shared)"
    return f"the session belongs to another browser ({'no cookie' if client is None else 'another cookie'})"


def share_scene(session_id: str, source, client: str | None = None) -> str:
    """A new id under which the session's map may read this scene's tiles (only from the browser `client`, when
    the session knows its browser)."""
    scene_id = new_id()
    with _lock:
        _scenes[scene_id] = (session_id, client, source)
    return scene_id


def scene(scene_id: str, client: str | None):
    """The scene shared under this id, if the asking browser is its session's."""
    with _lock:
        entry = _scenes.get(scene_id)
    if entry is None or (entry[1] is not None and entry[1] != client):
        return None
    return entry[2]


def revoke(session_id: str, keep_session: bool = True) -> None:
    """The session's scene ids stop working (and its exports too, unless keep_session)."""
    with _lock:
        for k in [k for k, (owner, _, _) in _scenes.items() if owner == session_id]:
            del _scenes[k]
        if not keep_session:
            _sessions.pop(session_id, None)
