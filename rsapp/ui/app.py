"""The Gradio page: map canvas, drawn AOIs, chat, overlays, change maps, exports. Built on Analyst.ask.

Every handler turns the user's mistakes into a message in the chat (and a toast), never a traceback, and
leaves the session as it was, so no work is lost.
"""

from __future__ import annotations

import functools
import hashlib
import html
import inspect
import json
import logging
import shutil
import threading
import time
import traceback
from pathlib import Path

import gradio as gr

from rsapp.analyst import Analyst
from rsapp.errors import RsappError
from rsapp.tasks.tokens import TASK_TOKENS
from rsapp.ui.mapview import map_frame
from rsapp.ui.routes import client_of, export_url, map_url
from rsapp.ui.session import Session, remove_stale_workdirs, workdir_for

log = logging.getLogger("rsapp.ui")
SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_data"
SAMPLES = {
    "Las Vegas buildings — SpaceNet, 0.3 m": ["vegas_buildings_0.3m.tif"],
    "Paraná, Landsat 8 — 30 m": ["landsat8_224078_20200518_30m.tif"],
    "RGBN — 5 m": ["rgbn_5m.tif"],
    "Taizhou 2000 → 2003 — Landsat, change pair": ["taizhou_2000_30m.tif", "taizhou_2003_30m.tif"],
}
DEFAULT_SAMPLE = next(iter(SAMPLES))
TASK_CHOICES = ["auto", *TASK_TOKENS]
CSS = """
#rsapp-chat {min-height: 380px}
.rsapp-small textarea {font-family: monospace; font-size: 11px}
#rsapp-payload, #rsapp-imagery-shown {display: none}
#rsapp-downloads {display: flex; gap: 8px; flex-wrap: wrap}
.rsapp-dl {padding: 6px 12px; border-radius: 6px; border: 1px solid #8884; text-decoration: none; font-size: 14px}
.rsapp-dl-off {opacity: 0.45}
"""
# Hands the map page its layers: the page (an iframe built once per scene) is never rebuilt for an answer.
PUSH_TO_MAP_JS = """(text) => {
  const payload = JSON.parse(text || 'null');
  if (!payload) return;
  window.__rsappPayload = payload;
  const frame = document.querySelector('#rsapp-map-frame');
  if (frame && frame.contentWindow && frame.contentWindow.rsappSync) frame.contentWindow.rsappSync(payload);
}"""
DOWNLOADS = (("rsapp_layers.geojson", "GeoJSON (all layers)", "rsapp-export-geojson"),
             ("rsapp_layers.gpkg", "GeoPackage", "rsapp-export-gpkg"),
             ("rsapp_mask.tif", "Mask GeoTIFF", "rsapp-export-mask"))


def _say(chat: list, role: str, text: str) -> list:
    return [*chat, {"role": role, "content": text}]


def guarded(n_outputs_before_chat: int):
    """Wrap a handler: RsappError → warning in the chat, other errors → a short message; state unchanged."""

    def deco(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except RsappError as e:
                message = str(e)
            except Exception as e:  # a bug: log it, tell the user plainly, keep the session
                log.error("handler %s failed:\n%s", fn.__name__, traceback.format_exc())
                message = f"something went wrong ({type(e).__name__}); the session is unchanged"
            gr.Warning(message)
            # by name: the last argument may be gr.Progress, not the chat
            chat = signature.bind_partial(*args, **kwargs).arguments.get("chat") or []
            return (*[gr.skip()] * n_outputs_before_chat, _say(chat, "assistant", f"⚠️ {message}"))

        return wrapper

    return deco


def map_html(session: Session) -> str:
    return map_frame(map_url(session.id, session.page_id))


def downloads_html(session: Session) -> str:
    """Links to the export route: each file is written when its link is clicked, not at every answer."""
    available = session.exports_available()
    links = []
    for name, label, elem in DOWNLOADS:
        if available[name]:
            links.append(f'<a id="{elem}" class="rsapp-dl" href="{export_url(session.id, name)}" download>{label}</a>')
        else:
            links.append(f'<span id="{elem}" class="rsapp-dl rsapp-dl-off" title="no layer to export yet">{label}</span>')
    return '<div id="rsapp-downloads">' + "".join(links) + "</div>"


def outputs_for(session: Session, new_map: bool = False) -> tuple:
    """Map page (only when the scene changed), layer picker, the map's layers, the download links."""
    names = [layer.name for layer in session.layers]
    return (
        map_html(session) if new_map else gr.skip(),
        gr.update(choices=names, value=names[-1] if names else None),
        json.dumps(session.map_payload()),
        downloads_html(session),
    )


def _end_session(request: gr.Request) -> None:
    """The tab was closed or reloaded: the session's export folder goes."""
    if request is not None and request.session_hash:
        shutil.rmtree(workdir_for(request.session_hash), ignore_errors=True)


_preloading = threading.Lock()


def _preload_once(analyst: Analyst) -> None:
    """The model loads in a thread of its own, once (later pages find it loaded)."""
    if _preloading.acquire(blocking=False):
        threading.Thread(target=_preload, args=(analyst,), daemon=True).start()


def _preload(analyst: Analyst) -> None:
    t0 = time.perf_counter()
    try:
        analyst.runtime
        log.info("model loaded in the background (%.1f s)", time.perf_counter() - t0)
    except Exception:  # said when a question needs the model
        log.exception("the model did not load")


def _forget(state) -> None:
    """Gradio dropped a session's state (an hour after its tab went away)."""
    if isinstance(state, Session):
        state.close()


def build_app(analyst: Analyst, preload: bool = False) -> gr.Blocks:
    """The page. preload: load the model in the background once a map page has drawn its first view (not before:
    the first imagery would wait for it), so the first answer does not."""
    removed = remove_stale_workdirs()
    if removed:
        log.info("removed %d stale session folder(s)", removed)
    with gr.Blocks(title="rsapp — chat with remote-sensing imagery") as demo:
        session = gr.State(None, delete_callback=_forget)
        gr.Markdown("### rsapp — chat with remote-sensing imagery, offline")
        with gr.Row():
            with gr.Column(scale=3):
                the_map = gr.HTML(elem_id="rsapp-map")
                with gr.Row():
                    sample = gr.Dropdown(list(SAMPLES), value=DEFAULT_SAMPLE, label="Sample imagery",
                                         elem_id="rsapp-sample")
                    upload = gr.File(label="Open a GeoTIFF / PNG / JPEG", file_types=[".tif", ".tiff", ".png",
                                     ".jpg", ".jpeg"], elem_id="rsapp-upload", height=90)
                    upload2 = gr.File(label="Second date (for change)", file_types=[".tif", ".tiff", ".png",
                                      ".jpg", ".jpeg"], elem_id="rsapp-upload2", height=90)
                info = gr.Markdown(elem_id="rsapp-info")
            with gr.Column(scale=2):
                chat = gr.Chatbot(label="Analyst", elem_id="rsapp-chat", height=420)
                with gr.Row():
                    task = gr.Dropdown(TASK_CHOICES, value="auto", label="Task", elem_id="rsapp-task", scale=1)
                    gsd = gr.Number(label="GSD override, m (0: from metadata)", value=0, minimum=0, elem_id="rsapp-gsd",
                                    scale=1)
                    detail = gr.Checkbox(label="Full detail (UHR)", value=False, scale=1)
                prompt = gr.Textbox(label="Ask", placeholder="[VQA] how many buildings are there?",
                                    elem_id="rsapp-prompt", lines=1)
                with gr.Row():
                    send = gr.Button("Send", variant="primary", elem_id="rsapp-send", scale=2)
                    whole = gr.Button("Run over the whole scene", elem_id="rsapp-whole", scale=2)
                    stop = gr.Button("Cancel", elem_id="rsapp-cancel", scale=1)
                aoi = gr.Textbox(label="AOI (GeoJSON, EPSG:4326) — draw on the map, paste one, or clear",
                                 elem_id="rsapp-aoi", lines=2, elem_classes=["rsapp-small"])
                with gr.Row():
                    layer_pick = gr.Dropdown([], label="Layers", elem_id="rsapp-layers", scale=2)
                    remove = gr.Button("Remove layer", elem_id="rsapp-remove", scale=1)
                downloads = gr.HTML(elem_id="rsapp-export")
                payload = gr.Textbox(elem_id="rsapp-payload", container=False, show_label=False)
                imagery_shown = gr.Button("imagery shown", elem_id="rsapp-imagery-shown")

        view = [the_map, layer_pick, payload, downloads]

        def loaded(s: Session, paths: list[str], chat, note: str = "", uploaded: tuple[str, ...] = (), progress=None):
            desc = s.load(paths, uploaded, progress)
            aoi_text = json.dumps(s.aoi) if s.aoi else ""
            return (*outputs_for(s, new_map=True), s, f"**Loaded** {desc}", aoi_text,
                    _say(chat, "assistant", f"Loaded {desc}{note}"))

        def new_session(request: gr.Request | None) -> Session:
            if request is None:
                return Session()
            return Session(key=request.session_hash or "", client=client_of(request))

        @guarded(len(view) + 3)
        def on_sample(choice, state, chat, request: gr.Request = None):
            return loaded(state or new_session(request), [str(SAMPLE_DIR / f) for f in SAMPLES[choice]], chat)

        @guarded(len(view) + 3)
        def on_upload(file, state, chat, request: gr.Request = None, progress=gr.Progress()):
            if not file:
                return (*[gr.skip()] * (len(view) + 3), chat)
            return loaded(state or new_session(request), [file], chat, uploaded=(file,), progress=progress)

        @guarded(len(view) + 3)
        def on_upload2(file, state, chat, progress=gr.Progress()):
            if not file:
                return (*[gr.skip()] * (len(view) + 3), chat)
            if not state or not state.paths:
                raise RsappError("load the first date before the second")
            return loaded(state, [state.paths[0], file], chat, ". Two dates: ask [CCD] what changed?",
                          uploaded=(file,), progress=progress)

        @guarded(len(view) + 1)
        def on_aoi(text, state, chat):
            if state is None:
                raise RsappError("load an image first")
            unchanged = (text or "").strip() == (json.dumps(state.aoi) if state.aoi else "")
            if unchanged:  # set by a (re)load, not by the user: nothing to say
                return (*[gr.skip()] * (len(view) + 1), chat)
            message = state.set_aoi(text)
            return (*outputs_for(state), state, _say(chat, "assistant", message))

        @guarded(len(view) + 2)
        def on_send(text, token, gsd_m, full_detail, state, chat, progress=gr.Progress()):
            if not state or not state.paths:
                raise RsappError("load an image first (pick a sample or upload one)")
            if not (text or "").strip() and token in (None, "auto"):
                raise RsappError("type a question, e.g. [VQA] how many buildings are there?")
            chat = _say(chat, "user", html.escape(text))  # shown as typed, never as markup
            progress(0.1, desc="reading imagery")
            scenes = state.open()
            try:
                progress(0.3, desc="running the model")
                answer = analyst.ask(scenes, text, aoi=state.aoi_for_model(), gsd=gsd_m or None,
                                     task=None if token == "auto" else token, detail=bool(full_detail))
            finally:
                for s in scenes:
                    s.close()
            progress(0.9, desc="drawing layers")
            try:
                layer = state.add(answer)
            except RsappError as full:  # the answer still shows; its layer is not kept
                layer = None
                answer.warnings.append(str(full))
            chat = _say(chat, "assistant", answer_markdown(answer, layer))
            return (*outputs_for(state), state, "", chat)

        def on_whole(text, state, chat, progress=gr.Progress()):
            """The prompt over every tile of the scene (in this process, with the app's model), merged into
            layers; yields after each tile so Cancel stops it there. Finished tiles are kept in the session's
            folder: the same prompt again resumes."""
            skip = [gr.skip()] * (len(view) + 2)
            try:
                batch = whole_scene_batch(analyst, state, text)
                chat = _say(chat, "user", f"{html.escape(text)} — whole scene")
                n, t0 = len(batch.jobs), time.perf_counter()
                line = f"running over {batch.report.tiles} tiles ({batch.report.tiles_resumed} done before)"
                yield (*skip, _say(chat, "assistant", line + "…"))
                for i in batch.run_here():
                    progress(i / n, desc=f"tile {i} of {n}")
                    yield (*skip, _say(chat, "assistant", f"{line}: {i} of {n}…"))
                report = batch.finish(time.perf_counter() - t0)
                added = []
                for name, gdf in batch.layers.items():
                    layer = state.add_features(f"whole scene: {name}", gdf)
                    if layer is not None:
                        added.append(f"{name}: {layer.summary()}")
                summary = "; ".join(added) or "nothing found"
                done = f"{report.tiles} tiles ({report.tiles_resumed} done before), {report.seconds:.0f} s"
                notes = "".join(f"\n\n*note: {html.escape(note)} ({n} of the tiles)*"
                                for note, n in report.notes.items())
                yield (*outputs_for(state), state, "", _say(chat, "assistant", f"**{summary}** — {done}{notes}"))
            except RsappError as e:
                gr.Warning(str(e))
                yield (*skip, _say(chat, "assistant", f"⚠️ {e}"))

        @guarded(len(view) + 1)
        def on_remove(name, state, chat):
            if not state or not name or not state.remove(name):
                raise RsappError("pick a layer to remove")
            return (*outputs_for(state), state, _say(chat, "assistant", f"Removed layer {name}"))

        demo.load(on_sample, [sample, session, chat], [*view, session, info, aoi, chat])
        if preload:
            imagery_shown.click(lambda: _preload_once(analyst), None, None, queue=False, show_progress="hidden")
        sample.input(on_sample, [sample, session, chat], [*view, session, info, aoi, chat])
        # The upload boxes empty themselves afterwards, ready for the next file (the scene itself is on the map).
        upload.upload(on_upload, [upload, session, chat], [*view, session, info, aoi, chat]).then(
            lambda: None, None, upload)
        upload2.upload(on_upload2, [upload2, session, chat], [*view, session, info, aoi, chat]).then(
            lambda: None, None, upload2)
        # .change, not .input: the map page sets the value from script, which Gradio 6 reports as a change only.
        aoi.change(on_aoi, [aoi, session, chat], [*view, session, chat])
        send_inputs = [prompt, task, gsd, detail, session, chat]
        send.click(on_send, send_inputs, [*view, session, prompt, chat])
        prompt.submit(on_send, send_inputs, [*view, session, prompt, chat])
        whole_run = whole.click(on_whole, [prompt, session, chat], [*view, session, prompt, chat])
        stop.click(None, None, None, cancels=[whole_run])
        remove.click(on_remove, [layer_pick, session, chat], [*view, session, chat])
        payload.change(None, [payload], None, js=PUSH_TO_MAP_JS)
        demo.unload(_end_session)
    return demo


def whole_scene_batch(analyst: Analyst, state: Session | None, text: str):
    """The batch of the session's scene for this prompt, run with the app's own model; its progress file is kept
    per prompt in the session's folder."""
    from rsapp.batch.runner import prepare
    from rsapp.batch.worker import use_analyst

    if not state or not state.paths:
        raise RsappError("load an image first (pick a sample or upload one)")
    if len(state.paths) != 1:
        raise RsappError("a whole-scene run takes one image: load the date you want alone")
    if not (text or "").strip():
        raise RsappError("type the prompt to run over the whole scene, e.g. [SEG] segment the buildings")
    weights = str(Path(analyst.weights).resolve())
    use_analyst(weights, analyst)
    folder = Path(state.workdir)
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"whole-{hashlib.sha256(text.encode()).hexdigest()[:12]}.gpkg"
    return prepare([state.paths[0]], text, out, weights, aoi=state.aoi_for_model())


def answer_markdown(a, layer) -> str:
    if a.gsd_source == "predicted":
        gsd = f"{a.gsd_m:.3g} m (predicted, ×/÷ {10 ** a.gsd_sigma_log10:.2f})"
    else:
        gsd = f"{a.gsd_m:.3g} m ({a.gsd_source})" if a.gsd_m else "unknown"
    if a.gsd_m and a.chip_gsd_m and a.chip_gsd_m > 1.05 * a.gsd_m:
        gsd += f", read at {a.chip_gsd_m:.3g} m"
    reader = (f"language model read {a.tokens_kept}/{a.tokens_total} visual tokens" if a.language_model
              else "answered by the vision heads")
    lines = [f"**{a.text}**", "",
             f"`{a.task}` · expert {a.expert} ({a.expert_name}) · GSD {gsd} · "
             f"{reader} · {a.quant} · {a.timings_s.get('total', 0):.2f} s"]
    if layer is not None:
        lines.append(f"Layer added: *{layer.name}* — {layer.summary()}")
    for w in a.warnings:
        lines.append(f"note: {w}")
    return "\n".join(lines)
