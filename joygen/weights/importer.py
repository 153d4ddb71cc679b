"""``python -m joygen weights import``: the official ``pretrained_models/`` tree -> joygen's layout.

The official JoyGen bundle (Google Drive, see `joygen.weights.BUNDLE_URL`) unpacks to a
``pretrained_models/`` folder (sometimes nested once more). Each artifact found there is checked by loading
it into the module that will use it (strictly: every key present, no key left over, every shape right) and
by comparing its sizes with the official ones; then it is copied into the layout of `joygen.weights`
(``unet/``, ``vae/``, ``whisper/``, ...). Nothing is written unless every file present passes. Artifacts
the tree lacks are listed; they can come from the public Hub repos instead.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from ..errors import WeightsError
from .locator import ARTIFACTS, default_weights_dir, file_sha256, write_marker

Log = Callable[[str], None]


class ImportProblem(Exception):
    """A file of the official tree that does not pass its check."""


def _load(loader: Callable, path):
    """Load a file with the module that will use it; its complaint becomes the import problem."""
    try:
        return loader(path)
    except WeightsError as exc:
        raise ImportProblem(str(exc)) from exc


def _root(source: Path) -> Path:
    """The folder that holds the official artifacts (handles the archive's extra nesting)."""
    for cand in (source, source / "pretrained_models", source / "pretrained_models" / "pretrained_models"):
        if (cand / "joygen").is_dir() or (cand / "sd-vae-ft-mse").is_dir() or (cand / "BFM").is_dir():
            return cand
    raise WeightsError(
        f"'{source}' does not look like the official pretrained_models/ folder "
        "(no joygen/, sd-vae-ft-mse/ or BFM/ inside)"
    )


def _check_config(name: str, config: dict, official: dict, any_size: bool, always: tuple[str, ...]) -> None:
    keys = always if any_size else tuple(official)
    wrong = [
        f"{k}={config.get(k)!r} (official {official[k]!r})" for k in keys if _norm(config.get(k)) != _norm(official[k])
    ]
    if wrong:
        raise ImportProblem(f"{name} config differs from the official one: {', '.join(wrong)}")


def _norm(v):
    return list(v) if isinstance(v, tuple) else v


def _diffusers_folder(name: str, cls_name: str, folder: Path, official: dict, any_size: bool, always, out: Path):
    import json

    import diffusers

    config = json.loads((folder / "config.json").read_text())
    _check_config(name, config, official, any_size, always)
    cls = getattr(diffusers, cls_name)
    try:
        _, info = cls.from_pretrained(str(folder), output_loading_info=True, low_cpu_mem_usage=False)
    except Exception as exc:  # noqa: BLE001 - any load failure is the finding
        raise ImportProblem(f"{name}: {cls_name} cannot load '{folder}': {exc}") from exc
    bad = {k: v for k, v in info.items() if v and k != "error_msgs"}
    if bad or info.get("error_msgs"):
        raise ImportProblem(f"{name}: weights in '{folder}' do not match the architecture: {bad or info['error_msgs']}")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / "config.json", out / "config.json")
    st = folder / "diffusion_pytorch_model.safetensors"
    if st.is_file():
        shutil.copyfile(st, out / st.name)
    else:  # only the pickle: re-save as safetensors, the format joygen loads
        model = cls.from_pretrained(str(folder))
        model.save_pretrained(out, safe_serialization=True)


def _unet(src: Path, out: Path, any_size: bool) -> None:
    from ..editor.mouth_editor import OFFICIAL_UNET_CONFIG

    _diffusers_folder(
        "JoyGen UNet",
        "UNet2DConditionModel",
        src / "joygen",
        OFFICIAL_UNET_CONFIG,
        any_size,
        ("in_channels", "out_channels", "cross_attention_dim"),
        out / "unet",
    )


def _vae(src: Path, out: Path, any_size: bool) -> None:
    from ..editor.mouth_editor import OFFICIAL_VAE_CONFIG

    _diffusers_folder(
        "SD VAE",
        "AutoencoderKL",
        src / "sd-vae-ft-mse",
        OFFICIAL_VAE_CONFIG,
        any_size,
        ("in_channels", "out_channels", "latent_channels"),
        out / "vae",
    )


def _whisper(src: Path, out: Path, any_size: bool) -> None:
    from ..editor.whisper import load_whisper_encoder

    path = src / "whisper" / "tiny.pt"
    encoder = _load(load_whisper_encoder, path)
    c = encoder.config
    if not any_size and (c.d_model, c.encoder_layers, c.encoder_attention_heads) != (384, 4, 6):
        raise ImportProblem(f"'{path}' is not Whisper tiny (d_model {c.d_model}, {c.encoder_layers} layers)")
    if c.d_model != 384:
        raise ImportProblem(f"'{path}': the editor cross-attends to 384-wide states, this model has {c.d_model}")
    (out / "whisper").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, out / "whisper" / "tiny.pt")


def _face_parsing(src: Path, out: Path, any_size: bool) -> None:
    from ..editor.face_parsing import load_bisenet

    path = src / "face-parse-bisent" / "79999_iter.pth"
    net = _load(load_bisenet, path)
    base = net.cp.resnet.conv1.out_channels
    if base != 64 and not any_size:
        raise ImportProblem(f"'{path}' has base width {base}; the official BiSeNet has 64")
    (out / "face_parsing").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, out / "face_parsing" / "79999_iter.pth")


def _hubert(src: Path, out: Path, any_size: bool) -> None:
    from transformers import HubertModel

    folder = src / "audio2motion" / "hubert"
    try:
        model, info = HubertModel.from_pretrained(str(folder), output_loading_info=True)
    except Exception as exc:  # noqa: BLE001
        raise ImportProblem(f"HuBERT in '{folder}' cannot be loaded: {exc}") from exc
    missing = [
        k
        for k in info.get("missing_keys", [])
        if "weight_g" not in k and "weight_v" not in k and "parametrizations" not in k
    ]
    if missing or info.get("mismatched_keys"):
        raise ImportProblem(f"HuBERT in '{folder}': missing {missing}, mismatched {info.get('mismatched_keys')}")
    c = model.config
    if c.hidden_size != 1024:
        raise ImportProblem(f"HuBERT in '{folder}' is {c.hidden_size} wide; audio2secc reads 1024-wide features")
    if not any_size and (c.num_hidden_layers, c.intermediate_size) != (24, 4096):
        raise ImportProblem(f"HuBERT in '{folder}' is not hubert-large ({c.num_hidden_layers} layers)")
    dest = out / "hubert"
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "preprocessor_config.json", "model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            shutil.copyfile(folder / name, dest / name)


def _audio2secc(src: Path, out: Path, any_size: bool) -> None:
    from ..motion.audio2secc import Audio2SeccConfig, load_audio2secc

    folder = src / "audio2motion" / "240210_real3dportrait_orig" / "audio2secc_vae"
    model = _load(load_audio2secc, folder)
    if not any_size and model.cfg != Audio2SeccConfig():
        raise ImportProblem(f"'{folder}' is not the official audio2secc size ({model.cfg})")
    dest = out / "audio2secc"
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("config.yaml", "model_ckpt_steps_400000.ckpt"):
        shutil.copyfile(folder / name, dest / name)


def _face_recon(src: Path, out: Path, any_size: bool) -> None:
    from ..face3d.reconstruction import load_recon_net

    path = src / "face_recon_feat0.2_augment" / "epoch_20.pth"
    net = _load(load_recon_net, path)
    base = net.backbone.conv1.out_channels
    if base != 64 and not any_size:
        raise ImportProblem(f"'{path}' has base width {base}; the official R-Net (ResNet-50) has 64")
    (out / "face_recon").mkdir(parents=True, exist_ok=True)
    torch.save({"net_recon": net.state_dict()}, out / "face_recon" / "epoch_20.pth")  # optimiser state dropped


def _bfm(src: Path, out: Path, any_size: bool) -> None:
    from ..face3d.bfm import BFM_FILES, FaceModel

    folder = src / "BFM"
    absent = [n for n in BFM_FILES if not (folder / n).is_file()]
    if absent:
        hint = " (01_MorphableModel.mat is there: make BFM_model_front.mat with Deep3DFaceRecon's transferBFM09)"
        raise ImportProblem(
            f"'{folder}' lacks {', '.join(absent)}" + (hint if (folder / "01_MorphableModel.mat").is_file() else "")
        )
    model = _load(FaceModel.from_folder, folder)
    if not any_size and model.num_vertices != 35709:
        raise ImportProblem(
            f"'{folder}/BFM_model_front.mat' has {model.num_vertices} vertices; the BFM front face has 35709"
        )
    (out / "bfm").mkdir(parents=True, exist_ok=True)
    for n in BFM_FILES:
        shutil.copyfile(folder / n, out / "bfm" / n)


# artifact -> (official path that must exist for it to be imported, checker)
IMPORTERS: dict[str, tuple[str, Callable[[Path, Path, bool], None]]] = {
    "unet": ("joygen/config.json", _unet),
    "vae": ("sd-vae-ft-mse/config.json", _vae),
    "whisper": ("whisper/tiny.pt", _whisper),
    "face_parsing": ("face-parse-bisent/79999_iter.pth", _face_parsing),
    "hubert": ("audio2motion/hubert/config.json", _hubert),
    "audio2secc": ("audio2motion/240210_real3dportrait_orig/audio2secc_vae/config.yaml", _audio2secc),
    "face_recon": ("face_recon_feat0.2_augment/epoch_20.pth", _face_recon),
    "bfm": ("BFM", _bfm),
}


def import_official(
    source: str | Path,
    output: str | Path | None = None,
    *,
    push_to_hub: str | None = None,
    private: bool = True,
    any_size: bool = False,
    log: Log = print,
) -> Path:
    """Check and convert the official tree; optionally upload the result.

    Args:
        source: the official ``pretrained_models/`` folder (or the folder that contains it).
        output: destination in joygen's layout (default: the default weights folder).
        push_to_hub: a Hub model repo id to upload the result to.
        private: create that repo private (the BFM's licence forbids redistribution).
        any_size: accept checkpoints whose sizes are not the official ones (test trees).

    Raises:
        WeightsError: listing every file that fails its check (nothing is written then).
    """
    src = _root(Path(source))
    out = Path(output) if output else default_weights_dir()
    out.mkdir(parents=True, exist_ok=True)
    problems, imported, absent = [], [], []
    with tempfile.TemporaryDirectory(prefix=".joygen-import-", dir=out) as staging:
        stage = Path(staging)
        for name, (marker, check) in IMPORTERS.items():
            if not (src / marker).exists():
                absent.append(name)
                continue
            log(f"checking {ARTIFACTS[name].title} ...")
            try:
                check(src, stage, any_size)
                imported.append(name)
            except (ImportProblem, OSError) as exc:
                problems.append(f"  - {ARTIFACTS[name].title}: {exc}")
        if problems:
            raise WeightsError(
                f"the official tree '{src}' did not pass the checks; nothing was written:\n" + "\n".join(problems)
            )
        for name in imported:
            folder = ARTIFACTS[name].folder
            if (out / folder).exists():
                shutil.rmtree(out / folder)
            shutil.move(str(stage / folder), str(out / folder))
    _copy_mtcnn(out, log)
    files = {
        str(p.relative_to(out)): file_sha256(p)
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "joygen_weights.json"
    }
    write_marker(out, "imported", source=str(src), artifacts=sorted(imported), sha256=files)
    for name in absent:
        log(f"note: the tree has no {ARTIFACTS[name].title}; joygen will look for it elsewhere")
    if "dwpose" not in imported:
        log("note: DWPose comes as ONNX from yzd-v/DWPose (the bundle's .pth is for mmpose and is not used)")
    if push_to_hub:
        _push(out, push_to_hub, private, log)
    return out


def _copy_mtcnn(out: Path, log: Log) -> None:
    from .locator import WeightsLocator

    found = WeightsLocator(out).find("mtcnn")
    if found is None:
        log("note: MTCNN weights not found (install facenet-pytorch with --no-deps); not copied")
        return
    dest = out / "mtcnn"
    dest.mkdir(exist_ok=True)
    for name, path in found.files.items():
        if path.resolve() != (dest / name).resolve():
            shutil.copyfile(path, dest / name)


def _push(folder: Path, repo_id: str, private: bool, log: Log) -> None:
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    log(f"uploading {folder} to {repo_id} ({'private' if private else 'PUBLIC'}) ...")
    if not private:
        log("warning: the Basel Face Model licence forbids redistribution; keep bfm/ out of public repos")
    api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        commit_message="joygen weights import",
        ignore_patterns=[".joygen-import-*", ".cache/*"],
    )
    log(f"done: set JOYGEN_WEIGHTS_REPO={repo_id} to use it")
