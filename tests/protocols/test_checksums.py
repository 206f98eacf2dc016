"""Shared CRCs: the catalogue check values for b"123456789"."""

from protocols.checksums import crc16_arc, crc16_x25


def test_crc16_x25_check_value():
    assert crc16_x25(b"123456789") == 0x906E
    assert crc16_x25(b"") == 0x0000


def test_crc16_arc_check_value():
    assert crc16_arc(b"123456789") == 0xBB3D
    assert crc16_arc(b"") == 0x0000
