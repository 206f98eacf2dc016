"""Checksums the codecs share.

CRC-16 in its reflected (LSB-first) form, table driven: CRC-16/X-25 (Concox
"CRC-ITU", GT06) and CRC-16/ARC (a.k.a. IBM: Teltonika, Wialon IPS 2.0).
"""

from __future__ import annotations


def _reflected_table(polynomial: int) -> tuple[int, ...]:
    """The 256-entry table of a reflected CRC-16 (`polynomial` bit-reversed)."""
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ polynomial if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_X25_TABLE = _reflected_table(0x8408)
_ARC_TABLE = _reflected_table(0xA001)


def _reflected_crc16(table: tuple[int, ...], data: bytes, crc: int) -> int:
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def crc16_x25(data: bytes) -> int:
    """CRC-16/X-25 (init 0xFFFF, xorout 0xFFFF); check value 0x906E for b"123456789"."""
    return _reflected_crc16(_X25_TABLE, data, 0xFFFF) ^ 0xFFFF


def crc16_arc(data: bytes) -> int:
    """CRC-16/ARC, a.k.a. IBM (init 0, no xorout); check value 0xBB3D for b"123456789"."""
    return _reflected_crc16(_ARC_TABLE, data, 0)
