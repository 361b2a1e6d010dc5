from pathlib import Path

import pytest

from pqrelay import _xwing

from ._helpers import read_draft_vector, xwing_encapsulate_derand

DRAFT = read_draft_vector(str(Path(__file__).parent / "data" / "xwing_draft06.txt"))


def test_xwing_draft06_vector_encapsulate_derand():
    dk = _xwing.DecapsulationKey.from_seed(DRAFT["seed"])
    ss, ct = xwing_encapsulate_derand(dk.encapsulation_key, DRAFT["eseed"])
    assert ct == DRAFT["ct"]
    assert ss == DRAFT["ss"]


def test_xwing_draft06_vector_decapsulate():
    assert _xwing.decapsulate(DRAFT["seed"], DRAFT["ct"]) == DRAFT["ss"]


def test_xwing_round_trip_random():
    dk, ek = _xwing.generate_keypair()
    assert len(ek) == _xwing.EK_SIZE
    ss, ct = _xwing.encapsulate(ek)
    assert len(ct) == _xwing.CT_SIZE and len(ss) == _xwing.SS_SIZE
    assert _xwing.decapsulate(dk, ct) == ss


def test_xwing_decapsulate_rejects_wrong_sizes():
    dk, _ = _xwing.generate_keypair()
    with pytest.raises(ValueError):
        _xwing.decapsulate(dk, bytes(1119))
    with pytest.raises(ValueError):
        _xwing.DecapsulationKey.from_seed(bytes(31))


def test_xwing_tampered_ciphertext_gives_other_secret():
    dk, ek = _xwing.generate_keypair()
    ss, ct = _xwing.encapsulate(ek)
    bad = bytes([ct[0] ^ 1]) + ct[1:]
    assert _xwing.decapsulate(dk, bad) != ss  # ML-KEM implicit rejection
