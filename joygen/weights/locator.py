"""Every model weight joygen uses, where it comes from, and how it is found.

One table (`ARTIFACTS`) names each artifact, the folder it has in joygen's layout, the files it needs, and,
where a public Hugging Face repo exists, that repo with a pinned 40-hex revision. The JoyGen-only files
(editor UNet, audio2secc, Deep3DFaceRecon, BFM) exist only in the official Google Drive bundle; `python -m
joygen weights import` converts that bundle into this layout and can push it to a Hub repo of your own.

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
from dataclasses import dataclass, field
from pathlib import Path

from .. import files
from ..errors import WeightsError

MARKER = "joygen_weights.json"  # written at the root of every weights folder joygen creates
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the source tree: joygen/weights/locator.py
BUNDLE_URL = "https://drive.google.com/file/d/1kvGsljFRnXKUK_ETdd49jJy8DbdgZKkE"  # official pretrained_models


@dataclass(frozen=True)
class Artifact:
    name: str
    title: str
    folder: str  # folder inside a weights dir / weights repo
    variants: tuple[tuple[str, ...], ...]  # acceptable file sets, in order of preference
    origin: str  # where the files come from originally (and their licence)
    public_repo: str | None = None  # public Hub repo holding the files (same names, at the repo root)
    public_revision: str | None = None  # pinned commit of public_repo
    public_variant: int = 0  # which variant the public repo provides
    package: str | None = None  # a pip distribution whose package data holds the files
    sha256: dict[str, str] = field(default_factory=dict)  # known digests of the original files
    official_path: str = ""  # where the official pretrained_models/ tree keeps it
    public_folder: str = ""  # folder of the files inside public_repo (default: its root)
    download_url: str | None = None  # where to download the original file by hand (no Hub copy is pinned)
    optional: bool = False  # not needed by an edit (evaluation metrics)

    @property
    def file_sets(self) -> list[list[str]]:
        return [[f"{self.folder}/{f}" for f in v] for v in self.variants]

    @property
    def public_files(self) -> tuple[str, ...]:
        """Paths of the public variant's files inside ``public_repo``."""
        prefix = f"{self.public_folder}/" if self.public_folder else ""
        return tuple(prefix + f for f in self.variants[self.public_variant])


ARTIFACTS: dict[str, Artifact] = {
    a.name: a
    for a in [
        Artifact(
            "unet",
            "JoyGen editor UNet (12 input channels, Whisper cross-attention)",
            "unet",
            (("config.json", "diffusion_pytorch_model.safetensors"),),
            "official JoyGen bundle only (Google Drive), Apache-2.0",
            official_path="joygen/",
        ),
        Artifact(
            "vae",
            "Stable Diffusion VAE (sd-vae-ft-mse)",
            "vae",
            (("config.json", "diffusion_pytorch_model.safetensors"),),
            "stabilityai/sd-vae-ft-mse, MIT",
            public_repo="stabilityai/sd-vae-ft-mse",
            public_revision="31f26fdeee1355a5c34592e401dd41e45d25a493",
            sha256={
                "diffusion_pytorch_model.safetensors": "a1d993488569e928462932c8c38a0760b874d166399b14414135bd9c42df5815"
            },
            official_path="sd-vae-ft-mse/",
        ),
        Artifact(
            "whisper",
            "Whisper-tiny audio encoder",
            "whisper",
            (("tiny.pt",), ("config.json", "model.safetensors")),
            "OpenAI Whisper tiny (tiny.pt in the JoyGen bundle; openai/whisper-tiny on the Hub), MIT / Apache-2.0",
            public_repo="openai/whisper-tiny",
            public_revision="169d4a4341b33bc18d8881c4b69c2e104e1cc0af",
            public_variant=1,
            sha256={"model.safetensors": "7ebd0e69e78190ffe1438491fa05cc1f5c1aa3a4c4db3bc1723adbb551ea2395"},
            official_path="whisper/tiny.pt",
        ),
        Artifact(
            "face_parsing",
            "BiSeNet face parsing (CelebAMask-HQ, 19 classes)",
            "face_parsing",
            (("79999_iter.pth",),),
            "zllrunning/face-parsing.PyTorch, MIT; Hub mirror ManyOtherFunctions/face-parse-bisent",
            public_repo="ManyOtherFunctions/face-parse-bisent",
            public_revision="0073b233a5a3c4b1377d4dbf49245017938a72b5",
            sha256={"79999_iter.pth": "468e13ca13a9b43cc0881a9f99083a430e9c0a38abd935431d1c28ee94b26567"},
            official_path="face-parse-bisent/79999_iter.pth",
        ),
        Artifact(
            "mtcnn",
            "MTCNN face detector (P-, R-, O-Net)",
            "mtcnn",
            (("pnet.pt", "rnet.pt", "onet.pt"),),
            "facenet-pytorch wheel package data, MIT",
            package="facenet-pytorch",
            sha256={
                "pnet.pt": "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
                "rnet.pt": "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
                "onet.pt": "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
            },
        ),
        Artifact(
            "vad",
            "Silero VAD voice activity detector (ONNX, sequence export)",
            "vad",
            (("silero_vad_16k_sequence.onnx",),),
            "silero-vad wheel package data, MIT",
            package="silero-vad",
            sha256={"silero_vad_16k_sequence.onnx": "9ccdacc4719d8aa7e45a77536bfabec45a03ba1f2fad5e241ab4060b24238a85"},
        ),
        Artifact(
            "hubert",
            "HuBERT-large speech features",
            "hubert",
            (
                ("config.json", "preprocessor_config.json", "model.safetensors"),
                ("config.json", "preprocessor_config.json", "pytorch_model.bin"),
            ),
            "facebook/hubert-large-ls960-ft, Apache-2.0 (revision = the safetensors conversion, refs/pr/1)",
            public_repo="facebook/hubert-large-ls960-ft",
            public_revision="ba42e7f7a888fd65f7af7849c452e3e7d5216aad",
            sha256={"model.safetensors": "1fefcd85b08c83451afd1df872bc11b92333dc4b5393506def29a20baa69c4ed"},
            official_path="audio2motion/hubert/",
        ),
        Artifact(
            "audio2secc",
            "Real3DPortrait audio2secc VAE (audio to expression)",
            "audio2secc",
            (("config.yaml", "model_ckpt_steps_400000.ckpt"),),
            "Real3DPortrait release, in the official JoyGen bundle only, MIT",
            official_path="audio2motion/240210_real3dportrait_orig/audio2secc_vae/",
        ),
        Artifact(
            "face_recon",
            "Deep3DFaceRecon R-Net (ResNet-50, 257 coefficients)",
            "face_recon",
            (("epoch_20.pth",),),
            "Deep3DFaceRecon_pytorch release, in the official JoyGen bundle only, MIT",
            official_path="face_recon_feat0.2_augment/epoch_20.pth",
        ),
        Artifact(
            "bfm",
            "Basel Face Model 2009 (front part) + MediaPipe index",
            "bfm",
            (("BFM_model_front.mat", "similarity_Lm3D_all.mat", "index_mp468_from_mesh35709.npy"),),
            "University of Basel BFM 2009 (licence forbids redistribution: supply it yourself)",
            official_path="BFM/",
        ),
        Artifact(
            "dwpose",
            "DWPose whole-body keypoints (RTMPose-l, ONNX)",
            "dwpose",
            (("dw-ll_ucoco_384.onnx",),),
            "yzd-v/DWPose, Apache-2.0",
            public_repo="yzd-v/DWPose",
            public_revision="1a7144101628d69ee7a3768d1ee3a094070dc388",
            sha256={"dw-ll_ucoco_384.onnx": "724f4ff2439ed61afb86fb8a1951ec39c6220682803b4a8bd4f598cd913b1843"},
        ),
        Artifact(
            "syncnet",
            "SyncNet lip-sync scorer (LSE-C / LSE-D; evaluation only)",
            "syncnet",
            (("syncnet_v2.model",),),
            "joonson/syncnet_python (VGG, Oxford; see its LICENSE.md); copy in ByteDance/LatentSync-1.6 auxiliary/",
            public_repo="ByteDance/LatentSync-1.6",
            public_revision="c42c7e6c8e9c213626389fa7d9a3c444b8536353",
            public_folder="auxiliary",
            sha256={"syncnet_v2.model": "961e8696f888fce4f3f3a6c3d5b3267cf5b343100b238e79b2659bff2c605442"},
            optional=True,
        ),
        Artifact(
            "inception",
            "FID Inception-v3 (TF 2015-12-05 weights as ported by pytorch-fid; evaluation only)",
            "inception",
            (("pt_inception-2015-12-05-6726825d.pth",),),
            "mseitzer/pytorch-fid release 'fid_weights' (Apache-2.0), ported from TensorFlow's inception-2015-12-05",
            download_url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
            "pt_inception-2015-12-05-6726825d.pth",
            sha256={
                "pt_inception-2015-12-05-6726825d.pth": "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
            },
            optional=True,
        ),
    ]
}

# What each part of the pipeline needs (DWPose: only for the landmark box, `FaceConfig.landmark_box`).
EDITOR_ARTIFACTS = ("unet", "vae", "whisper", "face_parsing", "mtcnn", "vad")
MOTION_ARTIFACTS = ("hubert", "audio2secc")
DEPTH_ARTIFACTS = ("face_recon", "bfm")
LANDMARK_ARTIFACTS = ("dwpose",)
METRIC_ARTIFACTS = ("syncnet", "inception")  # `python -m joygen eval` only; never needed by an edit


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

    def __getitem__(self, name: str) -> ResolvedArtifact:
        return self.artifacts[name]

    def __contains__(self, name: str) -> bool:
        return name in self.artifacts

    @property
    def tiny(self) -> bool:
        """True if any artifact comes from a tiny random-weight set: outputs are then meaningless."""
        return any(r.tiny for r in self.artifacts.values())

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
