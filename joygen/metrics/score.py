"""Lip-sync scores of whole videos: the official pipeline from a video file to LSE-C / LSE-D per face track.

For a video that is not already a face track (``run_pipeline.py`` + ``run_syncnet.py`` of syncnet_python):

1. ``ffmpeg -y -i VIDEO -qscale:v 2 -async 1 -r 25 video.avi`` (25 fps), its frames as ``-qscale:v 2`` JPEGs, its
   sound as a 16 kHz mono pcm_s16le wav (or the sound of a separate ``audio`` file instead);
2. faces in every frame (MTCNN here, S3FD in the official code), tracks and crops by `joygen.metrics.tracks`;
3. each track written as the official does: 224x224 frames to an XVID ``.avi`` at 25 fps with ``cv2.VideoWriter``,
   the sound cut to the track (``-ss first/25 -to (last+1)/25``) and muxed in unchanged;
4. each track clip scored by `joygen.metrics.protocol.evaluate_clip` (JPEG round trip included);
5. beside the scores, how steady each track is (`joygen.metrics.tracks.track_jitter`): box and mouth-corner motion
   of its detections, split by the voice activity of the sound (`joygen.voice_activity`, when a VAD is given).

A video's scores are the mean over its tracks (LatentSync's ``eval_sync_conf.py`` convention; a talking-head clip
has one track). With ``cropped=True`` the video is taken as a face track already (Wav2Lip's LRS2 scoring): step 4
only, after a conversion to 25 fps when the file has another frame rate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, JoyGenError
from ..media import probe, run_ffmpeg
from .protocol import BATCH_SIZE, FPS, VSHIFT, dump_frames, evaluate_clip, extract_audio, ffmpeg_path, read_image
from .tracks import Detection, FaceTrack, TrackConfig, crop_face, track_faces, track_jitter

DETECT_BATCH = 8  # frames per MTCNN call
OFFICIAL_TRACKS = TrackConfig()


@dataclass(frozen=True)
class ScoreConfig:
    tracks: TrackConfig = TrackConfig()
    vshift: int = VSHIFT
    batch_size: int = BATCH_SIZE


def to_25fps(video: str | Path, out_avi: str | Path) -> Path:
    """The official first step: ``-qscale:v 2 -async 1 -r 25`` into an .avi (MPEG-4 part 2)."""
    args = ["-y", "-i", ffmpeg_path(video), "-qscale:v", "2", "-async", "1", "-r", str(FPS), ffmpeg_path(out_avi)]
    run_ffmpeg(args, what=f"converting '{video}' to 25 fps")
    return Path(out_avi)


def detect_faces(jpgs: list[Path], detector, batch: int = DETECT_BATCH) -> list[list[Detection]]:
    """Every face ``detector`` finds in each frame (JPEG files, read as BGR and handed over as RGB)."""
    faces: list[list[Detection]] = []
    for start in range(0, len(jpgs), batch):
        frames = [read_image(p)[..., ::-1] for p in jpgs[start : start + batch]]
        shapes = {f.shape for f in frames}
        groups = [frames] if len(shapes) == 1 else [[f] for f in frames]  # MTCNN batches need one frame size
        found = [d for g in groups for d in detector(g)]
        for k, dets in enumerate(found):
            faces.append([Detection(start + k, d[0], d[1], d[2] if len(d) > 2 else None) for d in dets])
    return faces


CropSink = Callable[[np.ndarray], None]  # receives every 224x224 BGR face crop (for FID)


def write_track_clip(
    jpgs: list[Path],
    track: FaceTrack,
    wav: Path,
    out: Path,
    config: TrackConfig = OFFICIAL_TRACKS,
    crop_sink: CropSink | None = None,
) -> Path:
    """The official ``crop_video``: crops -> XVID .avi (cv2), the sound cut to the track and copied in."""
    import cv2

    silent = out.with_name(out.stem + "t.avi")
    writer = cv2.VideoWriter(str(silent), cv2.VideoWriter_fourcc(*"XVID"), FPS, (224, 224))
    if not writer.isOpened():
        raise JoyGenError(f"OpenCV cannot write XVID video to '{silent}'")
    try:
        for frame, window in zip(track.frames, track.crop_windows(config)):
            crop = crop_face(read_image(jpgs[int(frame)]), window, config.pad_value)
            writer.write(crop)
            if crop_sink is not None:
                crop_sink(crop)
    finally:
        writer.release()
    cut = out.with_name(out.stem + "_audio.wav")
    start, end = track.frames[0] / FPS, (track.frames[-1] + 1) / FPS
    run_ffmpeg(
        ["-y", "-i", ffmpeg_path(wav), "-ss", f"{start:.3f}", "-to", f"{end:.3f}", ffmpeg_path(cut)],
        what="cutting the sound of a face track",
    )
    run_ffmpeg(
        ["-y", "-i", ffmpeg_path(silent), "-i", ffmpeg_path(cut), "-c:v", "copy", "-c:a", "copy", ffmpeg_path(out)],
        what="muxing a face track",
    )
    return out


def _track_row(track: FaceTrack | None, result) -> dict:
    row = result.summary()
    if track is not None:
        row.update(start=int(track.frames[0]), end=int(track.frames[-1]), detections=track.detections)
    if result.notes:
        row["notes"] = list(result.notes)
    return row


def score_video(
    video: str | Path,
    net,
    work_dir: str | Path,
    *,
    detector=None,
    audio: str | Path | None = None,
    cropped: bool = False,
    config: ScoreConfig = ScoreConfig(),
    crop_sink: CropSink | None = None,
    vad=None,
) -> dict:
    """Score one video: ``{offset, lse_c, lse_d, frames, frames_scored, frames_without_face, windows, tracks}``,
    and, for an uncropped video, ``jitter`` (of its longest track; every track row has its own).

    ``crop_sink`` receives every face crop that is scored (224x224 BGR), e.g. to collect FID statistics.
    ``vad``: a `joygen.voice_activity.VoiceActivityDetector` to split the jitter into voiced and silent frames.

    Raises:
        InputError: the video (or audio) cannot be used: missing, no picture, no sound, too short, no face track.
    """
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    info = probe(video, "video")
    if info.video is None:
        raise InputError(f"'{video}' has no video stream")
    if audio is None and info.audio is None:
        raise InputError(f"'{video}' has no sound track, so lip sync cannot be measured")
    notes: list[str] = []
    if cropped:
        clip = Path(video)
        if info.video.fps is None or abs(info.video.fps - FPS) > 0.01:
            clip = to_25fps(video, work / "video25.avi")
            notes.append(f"converted from {info.video.fps or 'unknown'} fps to 25 fps (official -qscale:v 2 -r 25)")
        result = evaluate_clip(
            clip, net, work / "eval", audio=audio, vshift=config.vshift, batch_size=config.batch_size
        )
        if crop_sink is not None:
            for jpg in sorted((work / "eval" / "frames").glob("*.jpg")):
                crop_sink(read_image(jpg, resize=True))
        track_row = _track_row(None, result)
        return _video_row(result.n_frames, [track_row], result.n_frames, notes)

    if detector is None:
        raise JoyGenError("scoring an uncropped video needs a face detector")
    avi = to_25fps(video, work / "video.avi")
    jpgs = dump_frames(avi, work / "frames", quality=2)
    if not jpgs:
        raise InputError(f"'{video}' has no decodable frames")
    wav = work / "audio.wav"
    extract_audio(audio if audio is not None else avi, wav)
    n = len(jpgs)
    tcfg = config.tracks
    if n < tcfg.min_track:  # the official code tracks only shots of at least min_track frames
        raise InputError(
            f"'{video}': {n} frames is shorter than the {tcfg.min_track}-frame minimum track of the official "
            f"protocol; lower --min-track (e.g. to {max(6, n - 1)}) to score short clips"
        )
    faces = detect_faces(jpgs, detector)
    tracks = track_faces(faces, tcfg)
    if not tracks:
        with_face = sum(1 for f in faces if f)
        if with_face == 0:
            raise InputError(f"'{video}': no face found in any of its {n} frames")
        raise InputError(
            f"'{video}': faces in {with_face} of {n} frames, but no track of more than {tcfg.min_track} detections "
            f"with a mean size over {tcfg.min_face_size:.0f} px (face too small, too short or too unsteady)"
        )
    voice = None
    if vad is not None:
        from ..media import load_audio

        voice = vad(load_audio(wav), n).active
    rows, covered = [], np.zeros(n, bool)
    for k, track in enumerate(tracks):
        clip = write_track_clip(jpgs, track, wav, work / f"track{k:02d}.avi", tcfg, crop_sink)
        result = evaluate_clip(clip, net, work / f"eval{k:02d}", vshift=config.vshift, batch_size=config.batch_size)
        rows.append({**_track_row(track, result), "jitter": track_jitter(track, voice)})
        covered[track.frames] = True
    row = _video_row(n, rows, int(covered.sum()), notes)
    longest = max(range(len(tracks)), key=lambda k: tracks[k].detections)
    row["jitter"] = {**rows[longest]["jitter"], "voice": None if vad is None else vad.description}
    return row


def _video_row(frames: int, tracks: list[dict], scored: int, notes: list[str]) -> dict:
    lse_c = float(np.mean([t["lse_c"] for t in tracks]))
    lse_d = float(np.mean([t["lse_d"] for t in tracks]))
    row = {
        "offset": int(np.mean([t["offset"] for t in tracks])),  # LatentSync: int(mean over tracks)
        "lse_c": round(lse_c, 6),
        "lse_d": round(lse_d, 6),
        "frames": frames,
        "frames_scored": scored,
        "frames_without_face": frames - scored,
        "windows": int(sum(t["windows"] for t in tracks)),
        "tracks": tracks,
    }
    if notes:
        row["notes"] = notes
    return row
