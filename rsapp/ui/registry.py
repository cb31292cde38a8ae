"""What the map's routes may serve, and to whom: every scene and every session's exports are shared under an
unguessable id (never a path), handed to one browser session only. A session's scene ids go when it loads other
scenes or ends; an id nobody was given, or a path, finds nothing."""

from __future__ import annotations

import secrets
import threading
import weakref

_lock = threading.Lock()
_scenes: dict[str, tuple[str, object]] = {}  # scene id → (owning session's id, TileSource)
_sessions: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # session id → Session


def new_id() -> str:
    return secrets.token_urlsafe(18)


def share_session(session_id: str, session) -> None:
    with _lock:
        _sessions[session_id] = session


def session(session_id: str):
    with _lock:
        return _sessions.get(session_id)


def share_scene(session_id: str, source) -> str:
    """A new id under which the session's map may read this scene's tiles."""
    scene_id = new_id()
    with _lock:
        _scenes[scene_id] = (session_id, source)
    return scene_id


def scene(scene_id: str):
    with _lock:
        entry = _scenes.get(scene_id)
    return entry[1] if entry else None


def revoke(session_id: str, keep_session: bool = True) -> None:
    """The session's scene ids stop working (and its exports too, unless keep_session)."""
    with _lock:
        for k in [k for k, (owner, _) in _scenes.items() if owner == session_id]:
            del _scenes[k]
        if not keep_session:
            _sessions.pop(session_id, None)
