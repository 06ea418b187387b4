"""The board's byte protocol over its UART (``docs/bringup.md``): what the host sends and
what the board answers. The hardware (:mod:`semifreddo_hw.link`), the host tool
(:mod:`sim.host`) and the board-level tests all use these definitions.

Host to board, a command byte and its arguments:

* ``W`` (:data:`CMD_WRITE`), address (4 bytes), value (4 bytes, two's complement), both
  little-endian: one write to the backbone's ``param_write`` port (the build's
  ``address_map.json`` and ``param_writes.hex``). Addresses past the port's width are
  dropped, as the backbone drops addresses past its map.
* ``F`` (:data:`CMD_FRAME`), then ``height * width * channels_in`` bytes: one frame of int8
  pixels in raster order, the channels of a pixel together (a ``(H, W, C)`` array's C
  order). The board adds the end-of-line and end-of-frame markers.
* ``C`` (:data:`CMD_SHUFFLE`), one byte (0 or 1): the cross-core shuffle, for the frames
  that follow (networks with the shuffle only; send it between frames).
* ``X`` (:data:`CMD_SWAP`): a design built with two parameter sets (the default; see
  ``param_swap`` in ``docs/backbone.md``) computes the frames that follow with the set the
  writes so far went to. Writes after a swap wait on the board until the swap has reached
  the outputs, and a frame must flow for that: after a swap, send a frame (or poll the
  status until ``param_busy`` is low) before writing again. A design with one set answers
  ``X`` as an unknown command.
* ``S`` (:data:`CMD_STATUS`): the board answers with one status record.

Any other command byte is skipped and sets the ``bad_command`` status flag.

Board to host, records:

* an output beat: a tag byte (:func:`beat_tag`: the output's index in
  :meth:`spec.network.Network.outputs`, the cores in order then the head's groups, plus
  :data:`TAG_EOL` / :data:`TAG_EOF` at the end of a row / frame; a head group that pools
  sends one beat per frame, with both), then the beat's channels as int8 bytes. Beats of
  different outputs interleave; each output's beats come in order.
* a status record: :data:`TAG_STATUS`, then one byte of :data:`STATUS_FLAGS` bits (sticky,
  from bit 0), then ``param_busy`` (:data:`STATUS_LIVE`: a swap not yet at the outputs).
"""

import numpy as np

__all__ = [
    "CMD_WRITE",
    "CMD_FRAME",
    "CMD_SHUFFLE",
    "CMD_STATUS",
    "CMD_SWAP",
    "TAG_EOL",
    "TAG_EOF",
    "TAG_STATUS",
    "STATUS_FLAGS",
    "STATUS_LIVE",
    "beat_tag",
    "encode_write",
    "encode_frame",
    "encode_shuffle",
    "encode_status",
    "encode_swap",
    "Records",
    "decode",
]

CMD_WRITE, CMD_FRAME, CMD_SHUFFLE, CMD_STATUS = b"W"[0], b"F"[0], b"C"[0], b"S"[0]
CMD_SWAP = b"X"[0]
TAG_EOL, TAG_EOF, TAG_STATUS = 0x10, 0x20, 0x80
#: Status bits, from bit 0: the backbone's two sticky error outputs, then the link's own.
STATUS_FLAGS = ("framing_error", "marker_mismatch", "rx_overrun", "rx_framing", "bad_command")
#: Status bits after those: states, not sticky.
STATUS_LIVE = ("param_busy",)


def beat_tag(core: int, eol: bool, eof: bool) -> int:
    return core | (TAG_EOL if eol else 0) | (TAG_EOF if eof else 0)


def encode_write(addr: int, value: int) -> bytes:
    if not 0 <= addr < 1 << 32:
        raise ValueError(f"address {addr} does not fit 32 bits")
    if not -(1 << 31) <= value < 1 << 31:
        raise ValueError(f"value {value} does not fit 32 signed bits")
    return (
        bytes([CMD_WRITE]) + addr.to_bytes(4, "little") + value.to_bytes(4, "little", signed=True)
    )


def encode_frame(frame) -> bytes:
    """``frame``: an ``(H, W, C)`` array of int8 values."""
    a = np.asarray(frame)
    if a.ndim != 3 or a.size == 0 or a.min() < -128 or a.max() > 127:
        raise ValueError("a frame is a non-empty (H, W, C) array of int8 values")
    return bytes([CMD_FRAME]) + a.astype(np.int8).tobytes()


def encode_shuffle(on: bool) -> bytes:
    return bytes([CMD_SHUFFLE, int(bool(on))])


def encode_status() -> bytes:
    return bytes([CMD_STATUS])


def encode_swap() -> bytes:
    return bytes([CMD_SWAP])


class Records:
    """What :func:`decode` found: per core, its beats (``(channels,)`` int8 arrays) and their
    markers (``(eol, eof)``); the status records (dicts of :data:`STATUS_FLAGS` and
    :data:`STATUS_LIVE`); and the
    bytes after the last whole record."""

    def __init__(self, cores: int):
        self.beats = [[] for _ in range(cores)]
        self.markers = [[] for _ in range(cores)]
        self.status: list[dict] = []
        self.rest = b""

    def frames(self, core: int, height: int, width: int) -> list[np.ndarray]:
        """Core ``core``'s whole frames as ``(height, width, channels)`` arrays."""
        n = height * width
        beats = self.beats[core]
        return [
            np.stack(beats[k : k + n]).reshape(height, width, -1)
            for k in range(0, len(beats) - n + 1, n)
        ]


def decode(data: bytes, channels: list[int]) -> Records:
    """Split the board's bytes into records; ``channels``: each core's output channels.
    ``ValueError`` on a tag that is neither a beat of a known core nor a status."""
    out = Records(len(channels))
    k = 0
    while k < len(data):
        tag = data[k]
        if tag == TAG_STATUS:
            if k + 2 > len(data):
                break
            out.status.append(
                {f: bool(data[k + 1] >> b & 1) for b, f in enumerate(STATUS_FLAGS + STATUS_LIVE)}
            )
            k += 2
            continue
        core = tag & 0x0F
        if tag & ~(0x0F | TAG_EOL | TAG_EOF) or core >= len(channels):
            raise ValueError(f"byte {k}: {tag:#04x} is not a record tag")
        if k + 1 + channels[core] > len(data):
            break
        beat = np.frombuffer(data[k + 1 : k + 1 + channels[core]], dtype=np.int8)
        out.beats[core].append(beat.astype(np.int64))
        out.markers[core].append((bool(tag & TAG_EOL), bool(tag & TAG_EOF)))
        k += 1 + channels[core]
    out.rest = data[k:]
    return out
