"""The README's code map matches the tree: every module and package of joygen/ has its line."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_code_map_names_every_module():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Code map") :]
    section = section[: section.index("\n## ", 1)]
    rows = dict(re.findall(r"^\| `(joygen/[^`]+)` \| (.+) \|$", section, re.M))
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
    for named in rows:  # and nothing that is gone
        assert (ROOT / named).exists(), f"the code map names {named}, which does not exist"
