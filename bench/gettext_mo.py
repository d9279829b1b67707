"""gettext_mo.py: the translated strings of a gettext .mo file, for the
benchmarks that build corpora from Debian's catalogues (stopwords.py,
stopword_quality.py). Standard library only."""
import struct


def mo_messages(path):
    """The translated strings of a .mo file (bytes; not the header)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 28:
        return []
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic == 0x950412de else ">" if magic == 0xde120495 \
        else None
    if endian is None:
        return []
    n, _, trans = struct.unpack(endian + "III", data[8:20])
    out = []
    for i in range(1, n):
        at = trans + 8 * i
        if at + 8 > len(data):
            break
        length, off = struct.unpack(endian + "II", data[at:at + 8])
        out.append(data[off:off + length])
    return out
