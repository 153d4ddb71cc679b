"""The joygen web app (Gradio), started by ``app.py`` at the repository root (a Space's entry point).

`server` (what was loaded, `STATE`), `parts` (examples, controls, progress, messages), `edit` (the Edit button and
``/edit``), `check` (the face check, ``/check_face``, the checks on upload), `notes` (what is said
beside an input), `page` (layout and wiring).
The engine, `joygen`, never imports gradio.
"""
