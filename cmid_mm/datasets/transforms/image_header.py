"""The image size a file declares in its header, read without decoding any pixel.

A PNG, JPEG or TIFF states its height and width in a few header bytes; the decoder then
allocates that much memory, whatever the rest of the file holds. A 1.2 MB PNG of zeros can
declare 20000 x 20000 RGB pixels (1.2 GB decoded); a few hundred bytes can declare 2^31 pixels.
:func:`declared_sizes` reads those header fields for the formats OpenCV and tifffile decode in
this project, so that ``LoadRSImageFromFile(max_pixels=...)`` can refuse a file before decoding
it. Only the header is parsed: PNG's IHDR chunk, the JPEG markers up to the first frame header
(SOF), every image file directory (page) of a classic or Big TIFF (tags ImageWidth /
ImageLength), the BMP info header, the PNM / PFM / PAM text header, the ``.npy`` header.
"""
import io
import struct
from typing import List, Optional, Tuple

import numpy as np

# (format name, [(height, width) of each image in the file: one, or one per TIFF page])
Declared = Tuple[str, List[Tuple[int, int]]]

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic ...): every 0xC0-0xCF
# except DHT (0xC4), JPG (0xC8, reserved) and DAC (0xCC).
JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM and RST0-7.
JPEG_STANDALONE = frozenset([0x01] + list(range(0xD0, 0xD8)))
TIFF_TAG_WIDTH, TIFF_TAG_LENGTH = 256, 257
# A TIFF directory chain longer than this is not followed further (the pages read so far count).
MAX_TIFF_PAGES = 65536
PNM_HEADER_BYTES = 65536


def declared_sizes(content: bytes) -> Optional[Declared]:
    """The format and the declared ``(height, width)`` of each image in ``content``.

    The format is recognised from the first bytes (as OpenCV does), not from the file name.

    Returns:
        ``(format, sizes)``; None if the format is not one of PNG, JPEG, TIFF, BMP, PNM / PFM /
        PAM, NPY, or if its header is cut short or does not state a size (the decoder then
        decides; a file it can decode is checked after decoding).
    """
    head = bytes(content[:16])
    try:
        if head.startswith(PNG_SIGNATURE):
            return _png(content)
        if head.startswith(b'\xff\xd8'):
            return _jpeg(content)
        if head[:4] in (b'II*\x00', b'MM\x00*', b'II+\x00', b'MM\x00+'):
            return _tiff(content)
        if head.startswith(b'BM'):
            return _bmp(content)
        if head.startswith(b'\x93NUMPY'):
            return _npy(content)
        if head[:1] == b'P' and head[1:2] in (b'1', b'2', b'3', b'4', b'5', b'6', b'F', b'f'):
            return _pnm(content)
        if head.startswith(b'P7'):
            return _pam(content)
    except (struct.error, ValueError, IndexError, SyntaxError):
        # a header cut short or malformed (numpy's .npy header parser raises SyntaxError or
        # ValueError): the decoder reports the file as unreadable
        return None
    return None


def _png(content: bytes) -> Optional[Declared]:
    # signature (8), then the IHDR chunk: length (4), b'IHDR', width (4), height (4), ...
    if bytes(content[12:16]) != b'IHDR':
        return None
    width, height = struct.unpack('>II', content[16:24])
    return 'PNG', [(height, width)]


def _jpeg(content: bytes) -> Optional[Declared]:
    pos, end = 2, len(content)
    while pos < end:
        if content[pos] != 0xFF:  # not at a marker: corrupt
            return None
        while pos < end and content[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= end:
            return None
        marker = content[pos]
        if marker in JPEG_STANDALONE:
            pos += 1
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        (length, ) = struct.unpack('>H', content[pos + 1:pos + 3])
        if marker in JPEG_SOF:
            height, width = struct.unpack('>HH', content[pos + 4:pos + 8])
            # height 0: defined later by a DNL marker, after the first scan
            return ('JPEG', [(height, width)]) if height else None
        pos += 1 + length  # the length counts itself, not the marker
    return None


def _tiff(content: bytes) -> Optional[Declared]:
    order = '<' if content[:2] == b'II' else '>'
    (magic, ) = struct.unpack(order + 'H', content[2:4])
    if magic == 42:  # classic: 32-bit offsets, 12-byte entries
        (ifd, ) = struct.unpack(order + 'I', content[4:8])
        count_fmt, entry_size, offset_fmt, name = 'H', 12, 'I', 'TIFF'
    else:  # BigTIFF: 64-bit offsets, 20-byte entries
        (ifd, ) = struct.unpack(order + 'Q', content[8:16])
        count_fmt, entry_size, offset_fmt, name = 'Q', 20, 'Q', 'BigTIFF'
    count_size = struct.calcsize(count_fmt)
    value_at = 12 if entry_size == 20 else 8  # tag (2), type (2), count (4 or 8), value
    formats = {3: 'H', 4: 'I', 16: 'Q'}  # SHORT, LONG, LONG8
    sizes, seen = [], set()
    while ifd and ifd not in seen and len(sizes) < MAX_TIFF_PAGES:
        seen.add(ifd)
        (n_tags, ) = struct.unpack(order + count_fmt, content[ifd:ifd + count_size])
        first = ifd + count_size
        found = {}
        for i in range(n_tags):
            entry = content[first + entry_size * i:first + entry_size * (i + 1)]
            tag, typ = struct.unpack(order + 'HH', entry[:4])
            if tag in (TIFF_TAG_WIDTH, TIFF_TAG_LENGTH) and typ in formats:
                fmt = order + formats[typ]
                found[tag] = struct.unpack(fmt, entry[value_at:value_at + struct.calcsize(fmt)])[0]
        if len(found) < 2:
            return None  # a page without its size: not decodable either
        sizes.append((found[TIFF_TAG_LENGTH], found[TIFF_TAG_WIDTH]))
        at = first + entry_size * n_tags
        (ifd, ) = struct.unpack(order + offset_fmt, content[at:at + struct.calcsize(offset_fmt)])
    return (name, sizes) if sizes else None


def _bmp(content: bytes) -> Optional[Declared]:
    (info_size, ) = struct.unpack('<I', content[14:18])
    if info_size == 12:  # OS/2 BITMAPCOREHEADER: unsigned 16-bit
        width, height = struct.unpack('<HH', content[18:22])
    else:  # BITMAPINFOHEADER and later: signed 32-bit, negative height = top-down rows
        width, height = struct.unpack('<ii', content[18:26])
    return 'BMP', [(abs(height), abs(width))]


def _pnm(content: bytes) -> Optional[Declared]:
    """P1-P6 (PBM / PGM / PPM) and PF / Pf (PFM): magic, width, height as ASCII tokens."""
    text = bytes(content[2:PNM_HEADER_BYTES])
    tokens, pos = [], 0
    while len(tokens) < 2 and pos < len(text):
        c = text[pos:pos + 1]
        if c.isspace():
            pos += 1
        elif c == b'#':  # comment to the end of the line
            eol = text.find(b'\n', pos)
            pos = len(text) if eol < 0 else eol + 1
        else:
            start = pos
            while pos < len(text) and not text[pos:pos + 1].isspace() \
                    and text[pos:pos + 1] != b'#':
                pos += 1
            tokens.append(int(text[start:pos]))
    if len(tokens) < 2:
        return None
    return 'PNM', [(tokens[1], tokens[0])]


def _pam(content: bytes) -> Optional[Declared]:
    fields = {}
    for line in bytes(content[:PNM_HEADER_BYTES]).split(b'\n')[1:]:
        words = line.split()
        if words[:1] == [b'ENDHDR']:
            break
        if len(words) == 2 and words[0] in (b'WIDTH', b'HEIGHT'):
            fields[words[0]] = int(words[1])
    if len(fields) < 2:
        return None
    return 'PAM', [(fields[b'HEIGHT'], fields[b'WIDTH'])]


def _npy(content: bytes) -> Optional[Declared]:
    fp = io.BytesIO(bytes(content[:PNM_HEADER_BYTES]))
    major, _ = np.lib.format.read_magic(fp)
    read = {1: np.lib.format.read_array_header_1_0, 2: np.lib.format.read_array_header_2_0}
    if major not in read:
        return None
    shape, _, _ = read[major](fp)
    if len(shape) not in (2, 3):
        return None  # the loader refuses it with its own message
    return 'NPY', [(int(shape[0]), int(shape[1]))]


__all__ = ['declared_sizes', 'Declared']
