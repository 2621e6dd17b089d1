"""Damaged model files are caught by the card's checksums and named in one line: real corrupted files
(a flipped bit, a truncated file, a 1000-byte stand-in), the real `avatarcam` command."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.card import load_card
from engine.checkpoints import CheckpointError, read_official_checkpoint
from engine.checksums import CHECKSUM_FILE, check_checksums, read_checksums
from tests.fixtures_card import random_card  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "engine" / "models" / "toon"
VOICE = ROOT / "avatarcam" / "data" / "demo_voice.wav"


def avatarcam(*args, home: Path):
    env = dict(os.environ, AVATARCAM_HOME=str(home), XDG_CONFIG_HOME=str(home / "config"))
    return subprocess.run([sys.executable, "-m", "avatarcam.cli", *args], capture_output=True, text=True,
                          env=env, timeout=600, cwd=ROOT)


@pytest.fixture
def card(tmp_path, random_card):
    return Path(shutil.copytree(random_card, tmp_path / "card"))


def flip_bit(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


def run_card(card: Path, home: Path):
    return avatarcam("run", "--audio", str(VOICE), "--duration", "1", "--no-camera", "--model", str(card), home=home)


def assert_one_line_naming(res, path: Path) -> None:
    assert res.returncode == 2, res.stderr
    err = [line for line in res.stderr.splitlines() if line.strip() and not line.startswith("streaming")]
    assert len(err) == 1 and err[0].startswith("error:") and str(path) in err[0], res.stderr
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr


def test_shipped_card_carries_checksums_that_match_its_files():
    listed = read_checksums(SHIPPED)
    assert listed is not None and {"model.safetensors", "autoencoder.safetensors"} <= set(listed)
    assert check_checksums(SHIPPED, deep=True) == []


def test_saving_a_card_writes_its_checksums(card):
    listed = read_checksums(card)
    assert set(listed) == {"model.safetensors", "autoencoder.safetensors", "autoencoder.yaml"}
    assert listed["model.safetensors"]["size"] == (card / "model.safetensors").stat().st_size


def test_bit_flip_in_the_weights_fails_verify_and_run_naming_the_file(card, tmp_path):
    weights = card / "model.safetensors"
    flip_bit(weights, weights.stat().st_size - 100)            # tensor data: loads fine, streams noise
    verify = avatarcam("models", "verify", str(card), home=tmp_path)
    assert verify.returncode == 2 and f"{weights} does not match its sha256" in verify.stdout
    assert_one_line_naming(run_card(card, tmp_path), weights)


@pytest.mark.parametrize("damage", ["truncated", "1000 bytes"])
def test_truncated_or_replaced_decoder_is_named(card, tmp_path, damage):
    ae = card / "autoencoder.safetensors"
    data = ae.read_bytes()
    ae.write_bytes(data[: len(data) // 2] if damage == "truncated" else os.urandom(1000))
    verify = avatarcam("models", "verify", str(card), home=tmp_path)
    assert verify.returncode == 2 and str(ae) in verify.stdout and "truncated or replaced" in verify.stdout
    assert_one_line_naming(run_card(card, tmp_path), ae)


def test_a_card_without_checksums_still_names_a_damaged_file(card, tmp_path):
    (card / CHECKSUM_FILE).unlink()
    weights = card / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    assert_one_line_naming(run_card(card, tmp_path), weights)
    ae = card / "autoencoder.safetensors"
    ae.write_bytes(os.urandom(1000))
    verify = avatarcam("models", "verify", str(card), home=tmp_path)
    assert verify.returncode == 2 and f"decoder: {ae} is not a readable safetensors file" in verify.stdout


def test_checksum_command_rewrites_the_list_after_a_deliberate_change(card, tmp_path):
    from safetensors.torch import load_file, save_file
    ae = card / "autoencoder.safetensors"                    # retrained: same tensors, other values
    save_file({k: v + 0.01 for k, v in load_file(str(ae)).items()}, str(ae))
    (card / "extra.safetensors").write_bytes(b"not listed yet")
    assert len(check_checksums(card)) == 1
    res = avatarcam("models", "checksum", str(card), home=tmp_path)
    assert res.returncode == 0 and f"wrote {card / CHECKSUM_FILE}: 4 files" in res.stdout
    assert check_checksums(card, deep=True) == [] and "extra.safetensors" in read_checksums(card)
    load_card(card).check_files()


def test_load_check_is_cheap_on_the_shipped_card():
    t0 = time.perf_counter()
    load_card(SHIPPED).check_files()
    assert time.perf_counter() - t0 < 2.0                     # 18 MB hashed (about 0.05 s measured)


def test_garbage_official_checkpoint_is_named_without_torch_advice(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError) as err:
        read_official_checkpoint(bad)
    assert str(bad) in str(err.value) and "not a PyTorch checkpoint" in str(err.value)
    assert "mmap" not in str(err.value) and "_use_new_zipfile_serialization" not in str(err.value)
