"""The caller's camera: the latest video frame of each call, for the ``look`` tool.

A call's transport (the WebRTC peer) hands every received frame to ``FrameStore.set_frame``;
the store keeps only the newest one per conversation and caller, as the decoded frame,
untouched: frames arrive at up to 30 per second and almost all of them are never looked at.
Only when ``look`` asks does ``latest`` encode the frame to JPEG (PyAV's MJPEG encoder, so
no imaging library is needed), scaled so that its long side is at most 768 pixels, which is
what vision models take in one tile; the encoded picture is cached until the next frame.

Frames belong to the caller who sent them: ``latest`` answers only the same principal (user
and tenant) in the same conversation, so nobody sees another user's camera, and in a room
each participant sees only their own. A frame older than ``stale_after_s`` is still given,
marked stale, so the model can say the picture may be old (a frozen or stopped camera).

One store per ``Graft`` runtime (``Graft.frames``); it reaches tools as ``Context.frames``.
PyAV comes with the ``voice`` extra (aiortc's dependency) and is imported only to encode.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from graft.voice import VOICE_EXTRA_HINT, VoiceUnavailable

if TYPE_CHECKING:
    import av
    import numpy as np
    from numpy.typing import NDArray

    from graft.context import Principal

    Frame: TypeAlias = av.VideoFrame | NDArray[np.uint8]
else:
    Frame: TypeAlias = Any

__all__ = ["MAX_SIDE", "STALE_AFTER_S", "FrameStore", "Snapshot", "encode_jpeg"]

MAX_SIDE: Final = 768
"""Longest side, in pixels, of the picture a model is shown."""
STALE_AFTER_S: Final = 10.0
"""A frame older than this is marked stale."""

_Key: TypeAlias = tuple[str, str, str]
"""(conversation id, tenant, user id)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The latest camera frame of a call, as a JPEG picture."""

    jpeg: bytes
    width: int
    height: int
    taken_at: float
    """Unix time at which the frame arrived."""
    age_s: float
    """Seconds between its arrival and the ``latest`` call that returned it."""
    stale: bool
    """Older than the store's ``stale_after_s``: the camera may be frozen or off."""


@dataclass(slots=True)
class _Entry:
    frame: Frame
    taken_at: float
    encoded: tuple[bytes, int, int] | None = field(default=None)


class FrameStore:
    """The newest camera frame of each caller in each active call (see the module docstring).

    ``clock`` gives Unix time (``time.time``; tests pass their own). Safe to use from the
    event loop and worker threads at once: ``latest`` encodes, so call it off the loop.
    """

    def __init__(
        self,
        *,
        stale_after_s: float = STALE_AFTER_S,
        max_side: int = MAX_SIDE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_side < 16:
            raise ValueError(f"max_side must be at least 16 pixels, not {max_side}")
        self.stale_after_s = stale_after_s
        self.max_side = max_side
        self._clock = clock
        self._entries: dict[_Key, _Entry] = {}
        self._lock = threading.Lock()

    def set_frame(self, conversation_id: str, owner: Principal, frame: Frame) -> None:
        """Keep ``frame`` as ``owner``'s newest in ``conversation_id``; older ones are dropped.

        ``frame`` is an ``av.VideoFrame`` (what aiortc's video track yields) or an RGB
        ``uint8`` array of shape (height, width, 3); anything else raises ``TypeError`` or
        ``ValueError`` here, not later in ``look``. Nothing is converted or copied.
        """
        if not conversation_id:
            raise ValueError("a camera frame needs the call's conversation id")
        _check(frame)
        entry = _Entry(frame, self._clock())
        with self._lock:
            self._entries[(conversation_id, owner.tenant, owner.user_id)] = entry

    def latest(self, conversation_id: str, principal: Principal) -> Snapshot | None:
        """``principal``'s newest frame in ``conversation_id`` as JPEG, or None if none.

        Encodes on the first call for a frame (a few milliseconds: call it off the event
        loop), then answers from a cache until the next frame arrives.
        """
        with self._lock:
            entry = self._entries.get((conversation_id, principal.tenant, principal.user_id))
        if entry is None:
            return None
        if entry.encoded is None:
            entry.encoded = encode_jpeg(entry.frame, self.max_side)
        jpeg, width, height = entry.encoded
        age = max(0.0, self._clock() - entry.taken_at)
        return Snapshot(jpeg, width, height, entry.taken_at, age, age > self.stale_after_s)

    def has_camera(self, principal: Principal) -> bool:
        """Whether ``principal`` has a frame in any call: a camera is (or was just) on."""
        with self._lock:
            return any(
                tenant == principal.tenant and user == principal.user_id
                for _, tenant, user in self._entries
            )

    def drop(self, conversation_id: str, owner: Principal | None = None) -> None:
        """Forget the frames of a call that ended, or only ``owner``'s (who left a room)."""
        with self._lock:
            for key in [k for k in self._entries if k[0] == conversation_id]:
                if owner is None or key[1:] == (owner.tenant, owner.user_id):
                    del self._entries[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def encode_jpeg(frame: Frame, max_side: int = MAX_SIDE) -> tuple[bytes, int, int]:
    """Encode a frame (``av.VideoFrame`` or RGB array) as JPEG: (bytes, width, height).

    Scaled down, keeping its aspect, until the long side is at most ``max_side`` (never up);
    both sides are even, as the 4:2:0 JPEG wants. ``VoiceUnavailable`` without PyAV.
    """
    try:
        import av
    except ImportError as exc:
        raise VoiceUnavailable(f"encoding a camera frame needs PyAV; {VOICE_EXTRA_HINT}") from exc
    video = frame if isinstance(frame, av.VideoFrame) else _from_array(frame)
    width, height = _fit(video.width, video.height, max_side)
    picture = video.reformat(width=width, height=height, format="yuvj420p")
    encoder = av.CodecContext.create("mjpeg", "w")
    assert isinstance(encoder, av.VideoCodecContext)
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
    encoder.time_base = Fraction(1, 30)
    packets = [*encoder.encode(picture), *encoder.encode(None)]
    return b"".join(bytes(packet) for packet in packets), width, height


def _check(frame: object) -> None:
    """Refuse what is neither an ``av.VideoFrame`` nor an RGB ``uint8`` array."""
    try:
        import av
        import numpy as np
    except ImportError as exc:
        raise VoiceUnavailable(f"camera frames need PyAV and numpy; {VOICE_EXTRA_HINT}") from exc
    if isinstance(frame, np.ndarray):
        if frame.dtype != np.uint8:
            raise TypeError(f"an RGB frame must be a uint8 RGB array, not {frame.dtype}")
        if frame.ndim != 3 or frame.shape[2] != 3 or min(frame.shape[:2]) < 2:
            raise ValueError(f"an RGB frame has shape (height, width, 3), not {frame.shape}")
        return
    if not isinstance(frame, av.VideoFrame):
        raise TypeError(
            f"a camera frame must be an av.VideoFrame or a uint8 RGB array, not {type(frame)}"
        )


def _from_array(array: Any) -> av.VideoFrame:
    import av
    import numpy as np

    _check(array)
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")


def _fit(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The size within ``max_side`` with the same aspect, rounded to even numbers."""
    scale = min(1.0, max_side / max(width, height))
    return (
        max(2, int(width * scale) // 2 * 2),
        max(2, int(height * scale) // 2 * 2),
    )
