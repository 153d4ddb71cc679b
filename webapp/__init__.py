"""The joygen web app (Gradio), started by ``app.py`` at the repository root (a Space's entry point).

`server` (what was loaded, `STATE`), `parts` (examples, controls, notes, progress), `edit` (the Edit button and
``/edit``), `check` (the face check, ``/check_face``, the checks on upload), `page` (layout and wiring).
The engine, `joygen`, never imports gradio.
"""
