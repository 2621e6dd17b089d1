"""wav2vec2 features for the paper model: the authors' offline recipe, the streaming departure, row slicing.

No model may come from a hub here, so every test builds a tiny random ``Wav2Vec2Model`` (hidden 32,
2 layers, the base model's conv kernels and strides so the 16 kHz -> 25 fps mapping is the real one)
and saves it, with a feature extractor, to a temp folder that ``Wav2VecFeatures`` loads with
``local_files_only=True``. The numbers the streaming tests allow were measured on this model.
"""
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model  # noqa: E402

from engine.codecs.wav2vec import Wav2VecFeatures, feature_dim, rows_for_latent_frames  # noqa: E402

SPF = 640  # samples per video frame at 16 kHz and 25 fps


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_wav2vec2")
    torch.manual_seed(0)
    config = Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=8)
    Wav2Vec2Model(config).save_pretrained(path)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=False).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def speech():
    """4 s of a stand-in for speech: an amplitude-modulated tone plus noise, 100 video frames."""
    rng = np.random.default_rng(0)
    t = np.arange(100 * SPF) / 16000
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))
    return (tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def _stream(features: Wav2VecFeatures, pcm: np.ndarray, chunk: int = 3700) -> torch.Tensor:
    features.reset()
    rows = [features.push(pcm[i: i + chunk]) for i in range(0, len(pcm), chunk)]
    return torch.cat(rows + [features.flush()])


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def test_feature_width_is_14_times_768_for_the_base_model():
    assert feature_dim(Wav2Vec2Config()) == 14 * 768 == 10752


def test_offline_encode_gives_one_row_per_complete_video_frame(model_dir, speech):
    features = Wav2VecFeatures(model_dir)
    rows = features.encode(np.concatenate([speech, np.zeros(SPF - 1, np.float32)]))
    assert rows.shape == (100, (2 + 2) * 32)
    assert rows.dtype == torch.float32


def test_conv_rate_is_2t_minus_1_and_interpolation_is_decimation(model_dir, speech):
    features = Wav2VecFeatures(model_dir)
    x = torch.from_numpy(speech[: 10 * SPF])[None]
    with torch.no_grad():
        conv = features.model.feature_extractor(x)
        interpolated = torch.nn.functional.interpolate(conv, size=10, mode="linear", align_corners=True)
    assert conv.shape[-1] == 2 * 10 - 1
    assert torch.allclose(interpolated, conv[..., ::2], atol=1e-6)


def test_hand_run_encoder_matches_the_transformers_forward(model_dir, speech):
    # Our encoder loop must give the same hidden states as Wav2Vec2Model.forward on the same conv features.
    features = Wav2VecFeatures(model_dir)
    x = torch.from_numpy(speech[: 20 * SPF])[None]
    with torch.no_grad():
        reference = features.model(x, output_hidden_states=True)
        conv = features.model.feature_extractor(x).transpose(1, 2)
        ours = features._encode_conv(conv)[0]
    width = features.model.config.hidden_size
    expected = torch.cat([reference.last_hidden_state[0], *[h[0] for h in reference.hidden_states]], dim=-1)
    assert len(reference.hidden_states) == 3
    assert (ours - expected).abs().max().item() < 1e-5
    assert torch.equal(ours[:, :width], ours[:, -width:])  # last layer appears first and last


def test_streamed_rows_match_offline_rows_with_normalisation_excluded(model_dir, speech):
    offline = Wav2VecFeatures(model_dir, normalize=False).encode(speech)
    streamed = _stream(Wav2VecFeatures(model_dir, context_frames=50, lookahead_frames=16, normalize=False), speech)
    no_context = _stream(Wav2VecFeatures(model_dir, context_frames=0, lookahead_frames=0, normalize=False), speech)
    assert streamed.shape == offline.shape == (100, 128)
    # Measured 0.028 (no context: 0.72); the rest comes mostly from the first conv layer's GroupNorm
    # seeing the window instead of the clip.
    assert _relative_error(streamed, offline) < 5e-2
    assert _relative_error(no_context, offline) > 10 * _relative_error(streamed, offline)


def test_running_normalisation_equals_whole_clip_normalisation_once_all_is_heard(model_dir, speech):
    loud_offset = 3.0 * speech + 0.2  # gain and DC offset that normalisation must remove
    features = Wav2VecFeatures(model_dir)
    features.push(loud_offset)
    whole_clip = features.extractor(loud_offset, sampling_rate=16000, return_tensors="np").input_values[0]
    assert np.abs(features._running_normalise(loud_offset) - whole_clip).max() < 1e-4


def test_streamed_rows_with_running_normalisation_match_offline_rows(model_dir, speech):
    loud_offset = 3.0 * speech + 0.2
    offline = Wav2VecFeatures(model_dir).encode(loud_offset)
    streamed = _stream(Wav2VecFeatures(model_dir, context_frames=50, lookahead_frames=16), loud_offset)
    # Measured 0.028, as without normalisation: the first conv layer's GroupNorm removes gain and
    # offset anyway, so the running statistics cost almost nothing.
    assert _relative_error(streamed, offline) < 5e-2


def test_push_holds_back_the_lookahead_and_flush_releases_it(model_dir, speech):
    features = Wav2VecFeatures(model_dir, context_frames=20, lookahead_frames=4)
    assert features.push(speech[: 30 * SPF + 100]).shape == (26, 128)
    assert features.push(speech[30 * SPF + 100: 31 * SPF]).shape == (1, 128)
    assert features.flush().shape == (4, 128)
    assert features.frames_emitted == 31
    features.reset()
    assert features.push(speech[: 3 * SPF]).shape == (0, 128)
    assert features.frames_emitted == 0


def test_models_load_only_from_local_files(tmp_path):
    with pytest.raises(OSError):
        Wav2VecFeatures(tmp_path / "not-downloaded")
    with pytest.raises(OSError):
        Wav2VecFeatures("facebook/wav2vec2-base-960h")  # a hub id is never fetched


def test_reference_latent_frame_gets_the_zero_row():
    assert rows_for_latent_frames(0, 1) == (0, 1)


def test_latent_frame_k_gets_rows_4k_minus_3_to_4k():
    for k in (1, 2, 7, 56):
        assert rows_for_latent_frames(k, k + 1) == (4 * k - 3, 4 * k + 1)


def test_a_window_from_the_anchor_takes_the_zero_row_then_4_per_frame():
    assert rows_for_latent_frames(0, 5) == (0, 17)
    start, end = rows_for_latent_frames(5, 21)  # a full 16-frame window starting at block 1
    assert (start, end) == (17, 81) and end - start == 4 * 16


def test_row_slice_rejects_an_empty_range():
    with pytest.raises(ValueError):
        rows_for_latent_frames(3, 3)
