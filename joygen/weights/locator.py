"""Every model weight joygen uses, where it comes from, and how it is found.

One table (`joygen.weights.table.ARTIFACTS`) names each artifact, the folder it has in joygen's layout, the
files it needs, and, where a public Hugging Face repo exists, that repo with a pinned 40-hex revision. The
JoyGen-only files (editor UNet, audio2secc, Deep3DFaceRecon, BFM) exist only in the official Google Drive
bundle; `python -m joygen weights import` converts that bundle into this layout and can push it to a Hub repo
of your own. This module finds them.

Resolution, per artifact, first hit wins:

1. the local weights folder: ``--weights DIR``, else ``$JOYGEN_WEIGHTS_DIR``, else ``checkpoints/``;
2. a Hub repo in this layout (``--weights-repo`` / ``$JOYGEN_WEIGHTS_REPO``, revision
   ``$JOYGEN_WEIGHTS_REVISION``);
3. the artifact's public Hub repo at its pinned revision (or, for MTCNN and the VAD, the pip package that
   carries the files: facenet-pytorch, silero-vad).

Hub files go through ``huggingface_hub`` into the standard cache (so Spaces' ``preload_from_hub`` and
``HF_HUB_OFFLINE=1`` work). Whatever is missing is reported in ONE `WeightsError` that lists every missing
file and how to supply it.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .. import files
from ..errors import WeightsError
from .table import (  # noqa: F401 - the table's names are part of the locator's interface
    ARTIFACTS,
    BUNDLE_URL,
    DEPTH_ARTIFACTS,
    EDITOR_ARTIFACTS,
    LANDMARK_ARTIFACTS,
    METRIC_ARTIFACTS,
    MOTION_ARTIFACTS,
    Artifact,
)

MARKER = "joygen_weights.json"  # written at the root of every weights folder joygen creates
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the source tree: joygen/weights/locator.py


def default_weights_dir() -> Path:
    """``$JOYGEN_WEIGHTS_DIR``, else ``checkpoints/`` of the source tree (or of the working directory)."""
    env = os.environ.get("JOYGEN_WEIGHTS_DIR")
    if env:
        return Path(env)
    if (PROJECT_ROOT / "app.py").is_file():
        return PROJECT_ROOT / "checkpoints"
    return Path.cwd() / "checkpoints"


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


_REACHABLE: dict[str, tuple[float, bool]] = {}  # host -> (checked at, reachable)
REACHABILITY_TTL = 300.0  # s; how long a "the Hub is (un)reachable" answer is trusted


def hub_reachable() -> bool:
    """Whether the Hub's host name resolves: a fast check before any download is tried.

    Without it, huggingface_hub retries for about 20 s per file on a machine with no network.
    """
    import socket
    import time
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"
    checked = _REACHABLE.get(host)
    if checked and time.monotonic() - checked[0] < REACHABILITY_TTL:
        return checked[1]
    try:
        socket.getaddrinfo(host, 443)
        ok = True
    except OSError:
        ok = False
    _REACHABLE[host] = (time.monotonic(), ok)
    return ok


@dataclass
class ResolvedArtifact:
    artifact: Artifact
    files: dict[str, Path]  # file name -> local path
    source: str  # "local folder DIR", "hub REPO@REV", "package NAME VERSION"
    tiny: bool = False  # from a tiny random-weight set

    @property
    def folder(self) -> Path:
        """The folder holding the files (they always share one)."""
        return next(iter(self.files.values())).parent

    def path(self, name: str | None = None) -> Path:
        return self.files[name] if name else self.folder


@dataclass
class WeightSet:
    """Resolved artifacts by name."""

    artifacts: dict[str, ResolvedArtifact]
    random: bool = False  # the models were built in memory with random weights (`tiny_components`)

    def __getitem__(self, name: str) -> ResolvedArtifact:
        return self.artifacts[name]

    def __contains__(self, name: str) -> bool:
        return name in self.artifacts

    @property
    def tiny(self) -> bool:
        """True if the models are random test ones (a tiny set, or built in memory): outputs are meaningless."""
        return self.random or any(r.tiny for r in self.artifacts.values())

    def describe(self, with_hashes: bool = False) -> list[dict]:
        rows = []
        for name, r in self.artifacts.items():
            row = {
                "name": name,
                "title": r.artifact.title,
                "source": r.source,
                "tiny": r.tiny,
                "files": {f: str(p) for f, p in r.files.items()},
            }
            if with_hashes:
                row["sha256"] = {f: file_sha256(p) for f, p in r.files.items()}
            rows.append(row)
        return rows


def read_marker(folder: Path) -> dict:
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return {}


def write_marker(folder: Path, kind: str, **extra) -> None:
    from .. import __version__

    data = {"format": 1, "kind": kind, "joygen": __version__, **extra}
    if kind == "tiny":
        data["note"] = "random weights for tests: every output made with them is meaningless"
    (folder / MARKER).write_text(json.dumps(data, indent=2) + "\n")


_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@functools.lru_cache(maxsize=256)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    return files.sha256_of(path)


def file_sha256(path: str | Path) -> str:
    """sha256 of a file; Hub-cache files are named by it, others are hashed once per process."""
    real = Path(os.path.realpath(path))
    if real.parent.name == "blobs" and _HEX64.match(real.name):
        return real.name
    st = real.stat()
    return _sha256_cached(str(real), st.st_size, st.st_mtime_ns)


class WeightsLocator:
    """Finds artifacts in a local folder, a JoyGen weights repo and the public Hub repos.

    Args:
        weights_dir: local folder in joygen's layout (default: `default_weights_dir`).
        repo_id: Hub repo in joygen's layout (default: ``$JOYGEN_WEIGHTS_REPO``).
        revision: revision of ``repo_id`` (default: ``$JOYGEN_WEIGHTS_REVISION``, else its main branch).
        use_public: also try the public repos / packages.
        download: fetch files that are not in the Hugging Face cache yet (False: only look).
    """

    def __init__(
        self,
        weights_dir: str | Path | None = None,
        repo_id: str | None = None,
        revision: str | None = None,
        use_public: bool = True,
        download: bool = True,
    ):
        self.weights_dir = Path(weights_dir) if weights_dir else default_weights_dir()
        self.repo_id = repo_id or os.environ.get("JOYGEN_WEIGHTS_REPO") or None
        self.revision = revision or os.environ.get("JOYGEN_WEIGHTS_REVISION") or None
        self.use_public = use_public
        self.download = download
        self._network_down = False

    # -- one artifact --------------------------------------------------------------------------------

    def _local(self, art: Artifact) -> ResolvedArtifact | None:
        folder = self.weights_dir / art.folder
        for variant in art.variants:
            files = {f: folder / f for f in variant}
            if all(p.is_file() for p in files.values()):
                tiny = read_marker(self.weights_dir).get("kind") == "tiny"
                return ResolvedArtifact(art, files, f"local folder {self.weights_dir}", tiny)
        return None

    def _hub(self, repo: str, revision: str | None, paths: list[str]) -> list[Path] | None:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache

        found = []
        for path in paths:
            cached = try_to_load_from_cache(repo, path, revision=revision)
            if isinstance(cached, str):
                found.append(Path(cached))
                continue
            if not self.download or hub_offline() or self._network_down:
                return None
            if not hub_reachable():
                self._network_down = True
                return None
            try:
                found.append(Path(hf_hub_download(repo, path, revision=revision)))
            except Exception as exc:  # noqa: BLE001 - every Hub failure means "not available from there"
                if _is_connection_problem(exc):
                    self._network_down = True
                return None
        return found

    def _bundle(self, art: Artifact) -> ResolvedArtifact | None:
        if not self.repo_id:
            return None
        for variant in art.variants:
            got = self._hub(self.repo_id, self.revision, [f"{art.folder}/{f}" for f in variant])
            if got:
                rev = f"@{self.revision}" if self.revision else ""
                return ResolvedArtifact(art, dict(zip(variant, got)), f"hub {self.repo_id}{rev}")
        return None

    def _public(self, art: Artifact) -> ResolvedArtifact | None:
        if art.package:
            return _from_package(art)
        if not art.public_repo:
            return None
        variant = art.variants[art.public_variant]
        got = self._hub(art.public_repo, art.public_revision, list(art.public_files))
        if got:
            return ResolvedArtifact(art, dict(zip(variant, got)), f"hub {art.public_repo}@{art.public_revision}")
        return None

    def find(self, name: str) -> ResolvedArtifact | None:
        art = ARTIFACTS[name]
        return self._local(art) or self._bundle(art) or (self._public(art) if self.use_public else None)

    # -- many artifacts --------------------------------------------------------------------------------

    def resolve(self, names: tuple[str, ...] | list[str]) -> WeightSet:
        """Resolve ``names`` or raise one `WeightsError` describing everything missing."""
        found, missing = {}, []
        for name in names:
            r = self.find(name)
            if r is None:
                missing.append(name)
            else:
                found[name] = r
        if missing:
            raise WeightsError(self.missing_message(missing))
        return WeightSet(found)

    def status(self, names: tuple[str, ...] | list[str] | None = None) -> list[dict]:
        """Where each artifact would come from, without raising (for ``weights list`` and the app)."""
        rows = []
        for name in names or list(ARTIFACTS):
            r = self.find(name)
            art = ARTIFACTS[name]
            rows.append(
                {
                    "name": name,
                    "title": art.title,
                    "found": r is not None,
                    "source": r.source if r else None,
                    "tiny": bool(r and r.tiny),
                    "how": None if r else self.how_to_supply(art),
                }
            )
        return rows

    def how_to_supply(self, art: Artifact) -> str:
        files = " or ".join(" + ".join(fs) for fs in art.file_sets)
        ways = [f"put {files} under {self.weights_dir}"]
        if art.official_path:
            ways.append(
                f"run `python -m joygen weights import PRETRAINED_MODELS_DIR` on the official JoyGen bundle "
                f"({BUNDLE_URL}; it holds pretrained_models/{art.official_path})"
            )
        if art.public_repo:
            rev = art.public_revision
            variant = " ".join(art.public_files)
            if hub_offline() or self._network_down:
                ways.append(
                    f"fetch {art.public_repo}@{rev[:7]} while online (`hf download {art.public_repo} "
                    f"{variant} --revision {rev}`); HF_HUB_OFFLINE is set or the Hub is unreachable"
                )
            else:
                ways.append(f"it is fetched from {art.public_repo}@{rev[:7]} when the Hub is reachable")
        if art.package:
            ways.append(f"`pip install --no-deps {art.package}` (its wheel carries these files)")
        if art.download_url:
            digest = next(iter(art.sha256.values()), "")
            ways.append(f"download {art.download_url} (sha256 {digest[:16]}...) into {self.weights_dir / art.folder}")
        ways.append("set JOYGEN_WEIGHTS_REPO to a Hub repo made with `weights import --push-to-hub`")
        return "; or ".join(ways)

    def missing_message(self, names: list[str]) -> str:
        where = f"local folder {self.weights_dir}"
        where += f", Hub repo {self.repo_id}" if self.repo_id else ", no JoyGen weights repo (JOYGEN_WEIGHTS_REPO)"
        if hub_offline():
            where += ", HF_HUB_OFFLINE=1"
        lines = [f"missing model weights (looked in: {where}):"]
        for name in names:
            art = ARTIFACTS[name]
            files = " or ".join(", ".join(fs) for fs in art.file_sets)
            lines.append(f"  - {art.title} [{name}]: {files}")
            lines.append(f"      {self.how_to_supply(art)}")
        lines.append(
            "To try joygen without real weights: `python -m joygen weights tiny tiny-weights`, then pass "
            "`--weights tiny-weights` (random weights: the output is meaningless)."
        )
        return "\n".join(lines)


def _is_connection_problem(exc: Exception) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(k in text for k in ("connect", "timeout", "timed out", "offline", "resolve", "network"))


def _from_package(art: Artifact) -> ResolvedArtifact | None:
    import importlib.metadata as md

    try:
        dist = md.distribution(art.package)
    except md.PackageNotFoundError:
        return None
    wanted = set(art.variants[0])
    files = {Path(str(f)).name: Path(f.locate()) for f in dist.files or [] if Path(str(f)).name in wanted}
    if set(files) != wanted or not all(p.is_file() for p in files.values()):
        return None
    ordered = {f: files[f] for f in art.variants[0]}
    return ResolvedArtifact(art, ordered, f"package {art.package} {dist.version}")
