"""Whisper features: parity with the official stage-3 audio path (shared/golden/audio)."""

import json

import numpy as np
import pytest
import torch
from helpers import rel_err

from joygen.editor.whisper import (
    WhisperFeatures,
    audio_tokens,
    chunk_indices,
    load_whisper_encoder,
    log_mel_spectrogram,
    openai_to_hf_key,
    positional_encoding,
)
from joygen.media import load_audio
from joygen.timeline import Timeline

TOL = 1e-5  # golden README: max|x - golden| <= 1e-5 * max|golden| (+ 1e-6)


@pytest.fixture(scope="module")
def ref(golden):
    return np.load(golden / "audio" / "whisper_features.npz")


@pytest.fixture(scope="module")
def wav(demo_wav):
    return load_audio(demo_wav)


def test_log_mel_over_the_whole_clip(ref, wav):
    mel = log_mel_spectrogram(wav).numpy()
    assert mel.shape == (80, 501)
    assert rel_err(mel, ref["log_mel"]) <= TOL


def test_positional_encoding_and_chunk_table(ref):
    # Not bit-exact across CPUs: torch.exp rounds the last bit of some frequencies differently on Intel and AMD
    # (on an Intel Xeon 260 of the 19,200 values differed from the fixture by up to 1.9e-6, and the official
    # src/pe.py run there showed the same). sin/cos of arguments up to 49 turn one ulp of a frequency into at
    # most ~49 ulp(1) = 5.8e-6; 1e-5 bounds that with room.
    np.testing.assert_allclose(positional_encoding(50, 384).numpy(), ref["pe_table"], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(chunk_indices(250, np.arange(127)), ref["chunk_index"])  # integers: exact
    assert Timeline.from_samples(80_265).audio_chunks == len(ref["chunk_index"])


@pytest.mark.parametrize("layout", ["whisper/tiny_random.pt", "whisper/hf"])
def test_features_and_chunks_from_both_layouts(golden, ref, wav, layout):
    model = WhisperFeatures.from_pretrained(golden / "audio" / layout)
    features = model(wav)
    assert features.shape == (250, 5, 384)
    assert rel_err(features.numpy(), ref["features"]) <= TOL
    sel = ref["chunk_sel"]
    before = features[torch.from_numpy(chunk_indices(250, sel))].flatten(1, 2).numpy()
    assert rel_err(before, ref["chunks_before_pe_sel"]) <= TOL
    assert rel_err(audio_tokens(features, sel).numpy(), ref["chunks_after_pe_sel"]) <= TOL
    # the pipeline's path: windows encoded on demand, tokens built by the same function
    assert rel_err(model.stream(wav).tokens(sel).numpy(), ref["chunks_after_pe_sel"]) <= TOL


def test_stacked_states_are_taken_before_the_final_layernorm(golden, ref, wav):
    # transformers' own last hidden state has ln_post applied; the official 5th state does not.
    model = WhisperFeatures.from_pretrained(golden / "audio" / "whisper" / "hf")
    mel = torch.nn.functional.pad(log_mel_spectrogram(wav), (0, 3000 - 501))[None]
    with torch.no_grad():
        last = model.encoder(mel).last_hidden_state[0, :250].numpy()
    assert rel_err(last, ref["features"][:, 4]) > 0.1


def test_long_audio_is_encoded_window_by_window(golden):
    model = WhisperFeatures.from_pretrained(golden / "audio" / "whisper" / "hf")
    rng = np.random.default_rng(0)
    wav = (rng.standard_normal(16_000 * 31) * 0.05).astype(np.float32)  # 31 s: two windows
    features = model(wav)
    assert features.shape[0] == Timeline.from_samples(len(wav)).whisper_frames == 1550


def test_real_tiny_manifest_loads_strictly_in_both_layouts(golden, tmp_path):
    manifest = json.loads((golden / "audio" / "manifests" / "whisper_tiny_encoder.json").read_text())
    gen = torch.Generator().manual_seed(0)
    openai = {k: torch.randn(v["shape"], generator=gen).half() for k, v in manifest["openai"].items()}
    assert all(openai_to_hf_key(k) == v.removeprefix("model.encoder.") for k, v in manifest["openai_to_hf"].items())
    torch.save({"dims": manifest["dims"], "model_state_dict": openai}, tmp_path / "tiny.pt")
    encoder = load_whisper_encoder(tmp_path / "tiny.pt")  # strict
    assert sum(p.numel() for p in encoder.parameters()) == manifest["n_parameters_encoder_incl_positional_buffer"]
    # transformers layout: the same tensors under the hub's names
    from safetensors.torch import save_file
    from transformers import WhisperConfig

    hf_dir = tmp_path / "hf"
    hf_dir.mkdir()
    d = manifest["dims"]
    WhisperConfig(
        d_model=d["n_audio_state"],
        encoder_layers=d["n_audio_layer"],
        encoder_attention_heads=d["n_audio_head"],
        encoder_ffn_dim=4 * d["n_audio_state"],
        num_mel_bins=d["n_mels"],
        max_source_positions=d["n_audio_ctx"],
    ).to_json_file(hf_dir / "config.json")
    save_file({manifest["openai_to_hf"][k]: v.float() for k, v in openai.items()}, hf_dir / "model.safetensors")
    hf = load_whisper_encoder(hf_dir)
    for (k1, v1), (k2, v2) in zip(encoder.state_dict().items(), hf.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)


def test_concurrent_calls_do_not_mix_their_states(golden, ref, wav):
    from concurrent.futures import ThreadPoolExecutor

    model = WhisperFeatures.from_pretrained(golden / "audio" / "whisper" / "hf")
    other = (np.random.default_rng(1).standard_normal(16000 * 3) * 0.1).astype(np.float32)
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(model, [wav, other, wav, other]))
    assert outs[0].shape == (250, 5, 384) and outs[1].shape == (150, 5, 384)
    assert rel_err(outs[2].numpy(), ref["features"]) <= TOL
    np.testing.assert_array_equal(outs[1].numpy(), outs[3].numpy())


def test_blockwise_log_mel_equals_one_pass(wav):
    np.testing.assert_array_equal(log_mel_spectrogram(wav, block=37).numpy(), log_mel_spectrogram(wav).numpy())
