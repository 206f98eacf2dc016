"""The registered codecs, by name.  A new protocol is a module plus a line here."""

from protocols import gt06
from protocols.base import Codec, ProtocolError

CODECS: dict[str, Codec] = {
    gt06.CODEC.name: gt06.CODEC,
}


def get_codec(name: str) -> Codec:
    """The codec called `name`; ValueError naming the known ones otherwise."""
    try:
        return CODECS[name]
    except KeyError:
        raise ValueError(f"unknown protocol {name!r}; known: {', '.join(sorted(CODECS))}") from None


__all__ = ["CODECS", "ProtocolError", "get_codec"]
