"""The README's code map matches the tree: every module and package of joygen/ (and the app's webapp/) has its
line; the engine never imports gradio."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_code_map_names_every_module():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Code map") :]
    section = section[: section.index("\n## ", 1)]
    rows = dict(re.findall(r"^\| `((?:joygen|webapp)/[^`]*)` \| (.+) \|$", section, re.M))
    package = ROOT / "joygen"
    for path in sorted(package.glob("*.py")):
        if path.name not in ("__init__.py", "__main__.py"):
            assert f"joygen/{path.name}" in rows, f"the README's code map has no line for joygen/{path.name}"
    for folder in sorted(p for p in package.iterdir() if (p / "__init__.py").exists()):
        row = rows.get(f"joygen/{folder.name}/")
        assert row is not None, f"the README's code map has no line for joygen/{folder.name}/"
        for module in sorted(folder.glob("*.py")):
            if module.name != "__init__.py":
                assert f"`{module.stem}`" in row, f"joygen/{folder.name}/ in the code map does not name {module.stem}"
    app = rows.get("webapp/")
    assert app is not None, "the README's code map has no line for webapp/"
    for module in sorted((ROOT / "webapp").glob("*.py")):
        if module.name != "__init__.py":
            assert f"`{module.stem}`" in app, f"webapp/ in the code map does not name {module.stem}"
    for named in rows:  # and nothing that is gone
        assert (ROOT / named).exists(), f"the code map names {named}, which does not exist"


def test_the_engine_never_imports_gradio():
    code = (
        "import sys, joygen, joygen.pipeline, joygen.cli, joygen.views, joygen.face_check, joygen.metrics.api; "
        "print('gradio' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "False"  # gradio is the app's (webapp/), never the engine's
