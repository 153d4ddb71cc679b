"""The page: layout and wiring only (`build_demo`), and its style and script (`launch_options`)."""

from __future__ import annotations

import json

import gradio as gr

from . import server
from .check import (
    check_face,
    check_page,
    on_face,
    on_face_other,
    on_too_big,
    on_voice,
    on_voice_other,
)
from .edit import API_EDIT_OUTPUTS, PAGE_EDIT_OUTPUTS, edit, edit_page
from .parts import (
    EDIT_CONTROLS,
    EXAMPLE_LABELS,
    EXAMPLES,
    FACE_CONTROLS,
    IDLE_TEXT,
    OPTION_ORDER,
    UI,
    control,
    progress_html,
)
from .server import AppState, weights_panel

# On a click, before the server answers: scroll to the progress element and say that the edit is on its way.
_WAITING_JS = (
    "() => { document.getElementById('progress')?.scrollIntoView({behavior: 'smooth', block: 'start'}); "
    f"return {json.dumps(progress_html('Waiting for the editor ...', 'If other edits are running, this one starts when one ends.'))}; }}"
)
# On "Check the face", before the server answers: scroll to the check's line and say that it is running.
_CHECKING_JS = (
    "() => { document.getElementById('check-line')?.scrollIntoView({behavior: 'smooth', block: 'start'}); "
    "return 'Checking the face ... (a few seconds)'; }"
)


def _pictures(label: str, elem_id: str) -> gr.Gallery:
    """A hidden two-column gallery of captioned pictures, each at its own shape (assets/ui/app.css)."""
    return gr.Gallery(
        label=label, columns=2, object_fit="contain", height="auto", fit_columns=False, visible=False, elem_id=elem_id
    )


def build_demo(state: AppState | None = None) -> gr.Blocks:
    """The page. ``state`` is what `load_state` found (default: the module's)."""
    if state is not None:
        server.STATE = state
    ready = server.STATE.pipeline is not None
    with gr.Blocks(title="joygen: lip-sync video editing", delete_cache=(3600, 7200)) as demo:
        if not ready:
            gr.Markdown((UI / "no_weights.md").read_text(), elem_id="no-weights")
        gr.Markdown((UI / "tiny.md").read_text(), visible=server.STATE.tiny, elem_id="tiny-banner")
        gr.Markdown((UI / "intro.md").read_text(), elem_id="intro")
        face_tab, voice_tab = gr.State("video"), gr.State("track")
        with gr.Row(equal_height=False):
            with gr.Column(scale=5, min_width=320):
                with gr.Tabs(selected="video", elem_id="face-tabs") as face_tabs:
                    with gr.Tab("Video", id="video", elem_id="tab-video") as tab_video:
                        video = gr.Video(label="Talking-face video", sources=["upload", "webcam"], elem_id="in-video")
                        video_note = gr.HTML(elem_id="video-note")
                    with gr.Tab("Photo", id="photo", elem_id="tab-photo") as tab_photo:
                        photo = gr.Image(
                            label="Photo of a face",
                            type="filepath",
                            image_mode=None,
                            sources=["upload", "webcam", "clipboard"],
                            elem_id="in-photo",
                        )
                        photo_note = gr.HTML(elem_id="photo-note")
                with gr.Tabs(selected="track", elem_id="voice-tabs") as voice_tabs:
                    with gr.Tab("Voice track", id="track", elem_id="tab-track") as tab_track:
                        audio = gr.Audio(
                            label="New voice", type="filepath", sources=["upload", "microphone"], elem_id="in-audio"
                        )
                        audio_note = gr.HTML(elem_id="audio-note")
                    with gr.Tab("Voice from any file", id="file", elem_id="tab-file") as tab_file:
                        voice_file = gr.File(
                            label="Any audio or video file with sound (its first sound track)",
                            type="filepath",
                            height=120,
                            elem_id="in-voice-file",
                        )
                        voice_file_note = gr.HTML(elem_id="voice-file-note")
                too_big = gr.Textbox(visible="hidden", elem_id="too-big")  # set by assets/ui/app.js
                face_other = gr.File(type="filepath", visible="hidden", elem_id="in-face-other")
                voice_other = gr.File(type="filepath", visible="hidden", elem_id="in-voice-other")
                with gr.Row():
                    check_button = gr.Button("Check the face", interactive=ready, min_width=120, elem_id="check-button")
                    edit_button = gr.Button(
                        "Edit the lips", variant="primary", interactive=ready, min_width=120, elem_id="edit-button"
                    )
                reason = "" if ready else "Check and Edit are off: the editor's weights are missing (see the top)."
                gr.Markdown(reason, visible=not ready, elem_id="buttons-reason")
                clear_button = gr.Button("Clear", size="sm", variant="secondary", elem_id="clear-button")
                with gr.Accordion("Face crop and blend (used by the check and the edit)", open=False):
                    first_face = gr.Checkbox(
                        True, label="Check the first frame with a face", info="off: check the frame chosen below"
                    )
                    frame = gr.Slider(0, 1, 0, step=1, label="Frame to check (25 per second)", elem_id="check-frame")
                    face_controls = [
                        control(name, label, step, interactive=server.STATE.landmarks or name != "landmark_box")
                        for name, (label, step) in FACE_CONTROLS.items()
                    ]
                with gr.Accordion("Advanced options", open=False):
                    edit_controls = {
                        name: control(
                            name,
                            label,
                            step,
                            interactive=server.STATE.depth or name != "use_depth",
                            info=None
                            if server.STATE.depth or name != "use_depth"
                            else "3D weights missing: see Weights",
                        )
                        for name, (label, step) in EDIT_CONTROLS.items()
                    }
                if ready:
                    gr.Examples(
                        EXAMPLES,
                        [video, photo, audio, voice_file],
                        label="Examples (see the credits in assets/examples)",
                        example_labels=EXAMPLE_LABELS,
                    )
                gr.Markdown((UI / "tips.md").read_text())
            with gr.Column(scale=7, min_width=320):
                progress = gr.HTML(progress_html(IDLE_TEXT, state="idle"), elem_id="progress")
                check_line = gr.Markdown(elem_id="check-line")
                check_gallery = _pictures("Check the face: what the edit will use", "check-gallery")
                live = gr.Image(
                    label="Latest edited frame (original | edited)",
                    interactive=False,
                    visible=False,
                    elem_id="live-frame",
                )
                side = gr.Video(
                    label="Side by side: original | edited",
                    show_label=False,  # the picture says which half is which
                    interactive=False,
                    visible=False,
                    elem_id="out-side",
                )
                summary = gr.Markdown(visible=False, elem_id="summary")
                with gr.Row(equal_height=False):
                    edited = gr.Video(
                        label="Edited video", interactive=False, height=320, visible=False, elem_id="out-video"
                    )
                    with gr.Column():
                        timings = gr.Dataframe(
                            headers=["step", "seconds", "share %"],
                            label="Time per step",
                            interactive=False,
                            max_height=320,
                            column_widths=["56%", "24%", "20%"],
                            wrap=True,
                            visible=False,
                            elem_id="timings",
                        )
                        report = gr.File(label="JSON report (no server paths)", visible=False, elem_id="report")
                plot = gr.Image(
                    label="Lip trajectory: mouth opening (mm) and loudness (dB)",
                    interactive=False,
                    visible=False,
                    elem_id="lip-plot",
                )
                gallery = _pictures("Mouth depth (near = warm) over the face crop and beside it", "depth-gallery")
                gr.Markdown((UI / "about.md").read_text(), elem_id="about")
        with gr.Accordion("Weights", open=False, elem_id="weights-panel"):
            gr.Markdown(server.STATE.panel or weights_panel(server.STATE))

        # which tab is selected decides which file is used
        private = {"api_visibility": "private"}  # the page's own wiring; the API is /edit and /check_face
        # a setting that does nothing under another is greyed out there
        edit_controls["silence_mode"].change(
            lambda mode: gr.update(interactive=mode != "off"),
            edit_controls["silence_mode"],
            edit_controls["silence_seconds"],
            queue=False,
            **private,
        )
        edit_controls["smoothing"].change(
            lambda on: gr.update(interactive=bool(on)),
            edit_controls["smoothing"],
            edit_controls["expression_window"],
            queue=False,
            **private,
        )
        for tab, name, holder in (
            (tab_video, "video", face_tab),
            (tab_photo, "photo", face_tab),
            (tab_track, "track", voice_tab),
            (tab_file, "file", voice_tab),
        ):
            tab.select(lambda n=name: n, None, holder, queue=False, **private)
        # every upload is checked at once, the answer beside its box; what arrives in a tab selects it
        video.change(lambda p: on_face(p, "video"), video, [video_note, face_tabs, face_tab, frame], **private)
        photo.change(lambda p: on_face(p, "photo"), photo, [photo_note, face_tabs, face_tab, frame], **private)
        audio.change(lambda p: on_voice(p, "track"), audio, [audio_note, voice_tabs, voice_tab], **private)
        voice_file.change(
            lambda p: on_voice(p, "file"), voice_file, [voice_file_note, voice_tabs, voice_tab], **private
        )
        face_other.upload(
            on_face_other, [face_other, face_tab], [face_other, video, photo, video_note, photo_note], **private
        )
        voice_other.upload(on_voice_other, voice_other, [voice_other, voice_file, audio_note], **private)
        notes = [video_note, photo_note, audio_note, voice_file_note]
        too_big.change(on_too_big, too_big, notes, queue=False, **private)
        frame.release(lambda: False, None, first_face, queue=False, **private)

        outputs = {
            "progress": progress,
            "check_line": check_line,
            "check": check_gallery,
            "live": live,
            "side": side,
            "video": edited,
            "summary": summary,
            "plot": plot,
            "depth": gallery,
            "timings": timings,
            "report": report,
        }
        option_inputs = [
            edit_controls[n] if n in edit_controls else face_controls[list(FACE_CONTROLS).index(n)]
            for n in OPTION_ORDER
        ]
        edit_button.click(None, None, progress, js=_WAITING_JS, queue=False, **private)
        edit_event = edit_button.click(
            edit_page,
            [face_tab, video, photo, voice_tab, audio, voice_file, *option_inputs],
            [outputs[k] for k in PAGE_EDIT_OUTPUTS],
            show_progress="hidden",
            api_visibility="private",
            concurrency_id="edit",  # the page and the API share --concurrency
        )
        check_button.click(None, None, check_line, js=_CHECKING_JS, queue=False, **private)
        check_event = check_button.click(
            check_page,
            [face_tab, video, photo, first_face, frame, *face_controls],
            [check_gallery, check_line, video_note, photo_note, frame],
            show_progress="full",
            show_progress_on=[check_line],
            api_visibility="private",
            concurrency_id="check",
            trigger_mode="always_last",  # a click while a check runs is not dropped: the latest settings are checked
        )

        def clear():
            hidden = gr.update(value=None, visible=False)
            return (
                None,
                None,
                None,
                None,
                "",
                "",
                "",
                "",
                progress_html(IDLE_TEXT, state="idle"),
                "",
                gr.update(visible=False),
                *[hidden] * 8,
            )

        clear_button.click(
            clear,
            None,
            [
                video,
                photo,
                audio,
                voice_file,
                video_note,
                photo_note,
                audio_note,
                voice_file_note,
                progress,
                check_line,
                check_gallery,
                live,
                side,
                edited,
                summary,
                plot,
                gallery,
                timings,
                report,
            ],
            queue=False,
            cancels=[edit_event, check_event],
            **private,
        )

        # the named API: flat, typed endpoints (hidden buttons, so that they take files as plain arguments)
        api_edit = gr.Button(visible=False)
        api_edit.click(
            edit,
            [video, audio, *option_inputs],
            [outputs[k] for k in API_EDIT_OUTPUTS],
            api_name="edit",
            show_progress="hidden",
            concurrency_id="edit",
        )
        api_check = gr.Button(visible=False)
        api_check.click(
            check_face,
            [video, first_face, frame, *face_controls],
            [check_gallery, check_line],
            api_name="check_face",
            show_progress="hidden",
            concurrency_id="check",
        )
    return demo


def launch_options() -> dict:
    """The page's style and script (Gradio 6 takes them at launch)."""
    return {"css_paths": [UI / "app.css"], "js": (UI / "app.js").read_text()}
