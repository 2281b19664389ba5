"""Small files that decode to huge images or much work (decompression bombs), written in a few milliseconds for the
tests of media's decoding limits and of the app's resilience to them."""

import struct
import zlib


def write_png_bomb(path, width, height):
    """A 1-bit grayscale PNG of `width` x `height` black pixels: a few kB on disk for any size (the IDAT is
    compressed row by row, so writing it needs no full image in memory)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte "none" + packed bits
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def write_gif_bomb(path, width, height, frames, delay_cs=4, positions=None):
    """An animated GIF of `frames` one-pixel frames on a `width` x `height` canvas (about 20 bytes a frame):
    every frame is composited onto the whole canvas when decoded. `positions`: {frame: (x, y)} to place a
    frame elsewhere, outside the canvas too (a decoder then grows the canvas to fit it)."""
    out = bytearray(b"GIF89a" + struct.pack("<HH", width, height) + bytes([0x80, 0, 0]) + b"\x00\x00\x00\xff\xff\xff")
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"  # loop forever
    for index in range(frames):
        out += b"\x21\xf9\x04\x04" + struct.pack("<H", delay_cs) + b"\x00\x00"  # graphic control: keep, delay
        x, y = (positions or {}).get(index, (index % width, (index // width) % height))
        out += b"\x2c" + struct.pack("<HHHH", x, y, 1, 1) + b"\x00"  # image descriptor: 1x1 at (x, y)
        out += b"\x02\x02" + bytes([0x44 if index % 2 == 0 else 0x4C, 0x01]) + b"\x00"  # LZW: clear, colour, end
    out += b"\x3b"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))
    return path


def write_video_bomb(path, width, height, frames=1):
    """An H.264 video (MKV or MP4 by the suffix) of `frames` blank `width` x `height` frames: ~200 kB at 8192x8192,
    written in ~2 s (libx264 ultrafast)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            frame = av.VideoFrame(width, height, "yuv420p")
            for plane in frame.planes:
                plane.update(b"\x80" * plane.buffer_size)
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path
