#!/usr/bin/env python3
"""Writes the fixtures of tests/test_data_readers.cpp into this folder.

Run it from anywhere with `python3 tests/data/readers/make_fixtures.py`; it needs only the
standard library. The output is deterministic (gzip headers carry no time stamp), so
running it again must leave `git status` clean.

The CIFAR-10 grayscale values in cifar_3_gray.txt follow TensorFlow's rule for
tf.image.rgb_to_grayscale on uint8 images, with float32 rounding after every operation:
    x = float32(v) * float32(1/255)                      (convert_image_dtype to float32)
    gray = (xr * 0.2989 + xg * 0.5870) + xb * 0.1140     (weights as float32)
    value = int(gray * float32(255.5))                   (convert_image_dtype back, truncated)
Python computes in double; f32() rounds to float32 after each step. A product of two float32
values is exact in double, and so is the sum of these terms, so each step is the float32
operation exactly.
"""
import gzip
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


SCALE = f32(1.0 / 255.0)
W = [f32(0.2989), f32(0.5870), f32(0.1140)]
OUT_SCALE = f32(255.5)


def tf_gray(r, g, b):
    xs = [f32(v * SCALE) for v in (r, g, b)]
    gray = f32(xs[0] * W[0])
    gray = f32(gray + f32(xs[1] * W[1]))
    gray = f32(gray + f32(xs[2] * W[2]))
    return int(f32(gray * OUT_SCALE))  # truncation toward zero; never above 255


def write(name, data):
    mode = "wb" if isinstance(data, bytes) else "w"
    kwargs = {} if mode == "wb" else {"newline": "", "encoding": "utf-8"}  # "\r\n" kept as written
    with open(os.path.join(HERE, name), mode, **kwargs) as f:
        f.write(data)


def gz(data):
    return gzip.compress(data, mtime=0)


def idx(dims, values):
    header = struct.pack(">BBBB", 0, 0, 0x08, len(dims)) + b"".join(struct.pack(">I", d) for d in dims)
    return header + bytes(values)


def cifar_record(label, rgb):
    """rgb: 1024 (r, g, b) tuples, row-major."""
    return bytes([label]) + bytes(p[0] for p in rgb) + bytes(p[1] for p in rgb) + bytes(p[2] for p in rgb)


def main():
    # ---- text classification ----
    # A header found by name (any case), columns in another order, quoted texts holding a
    # comma, doubled quotes and a newline (record 3 spans lines 4-5).
    write("text_header.csv",
          'id,text,Label\n'
          'a1,"Hello, world",1\n'
          'a2,"She said ""hi"", then left",0\n'
          'a3,"two\nlines",2\n'
          'a4,plain,1\n')
    # No header, tab-separated, "\r\n" line ends, a blank line, UTF-8 bytes (not decoded).
    write("text_noheader.tsv",
          "0\tshort\r\n"
          "1\tthe quick brown fox jumps over the lazy dog\r\n"
          "\r\n"
          "3\t\u00e9t\u00e9\r\n")
    # Kaggle's IMDB layout: review,sentiment with words for labels.
    write("imdb_posneg.csv",
          'review,sentiment\n'
          '"Great movie, loved it",positive\n'
          'Awful,negative\n'
          '"ok ""fine""",POS\n'
          'meh,neg\n')

    # ---- retrieval: LRA's AAN layout; quotes are ordinary bytes there ----
    write("retrieval_aan.tsv",
          "1\taan/P01-1001\taan/P02-2002\tWe study parsing.\tParsing is \"hard\".\n"
          "0.0\tid3\tid4\t\"Quoted\" start, never closed\tplain text\n"
          "1.0\tid5\tid6\tx\t\n")

    # ---- CIFAR-10: 3 records with labels 3, 0, 9 ----
    records, grays = [], []
    for k, label in enumerate([3, 0, 9]):
        rgb = [((p * 7 + k * 50) % 256, (p * 13 + 11 * k) % 256, (p * 29 + 3) % 256) for p in range(1024)]
        if k == 0:  # corners of the colour cube first, checked by hand in the test
            rgb[:5] = [(255, 255, 255), (0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)]
        records.append(cifar_record(label, rgb))
        grays.append(" ".join(str(tf_gray(*p)) for p in rgb))
    write("cifar_3.bin", b"".join(records))
    write("cifar_3_gray.txt", "\n".join(grays) + "\n")

    # ---- idx: 5 images of 2x3, plain; their labels gzipped ----
    pixels = [(i * 40 + j * 7) % 256 for i in range(5) for j in range(6)]
    images = idx([5, 2, 3], pixels)
    write("tiny-images-idx3-ubyte", images)
    write("tiny-labels-idx1-ubyte.gz", gz(idx([5], [7, 2, 1, 0, 9])))

    # ---- malformed input, one kind per file ----
    write("bad_short.tsv", "0\tok\n1\tfine\n2\n")                      # line 3: one field
    write("bad_label.csv", "label,text\n1,good\nx1,bad\n")             # line 3: not a number
    write("bad_unterminated.csv", 'label,text\n1,fine\n0,"never closed\n1,more\n')  # opens on line 3
    write("bad_quote.tsv", "1\tplain\n0\tHe said \"hi\"\n")          # line 2: stray quote
    write("bad_retrieval.tsv", "1\ta\tb\tx\ty\n0\ta\tb\tonly one text\n")  # line 2: 4 fields
    write("bad_truncated-idx3-ubyte", images[:36])                     # data ends at 36 of 46
    write("bad_cut-idx3-ubyte.gz", gz(images)[:30])                    # gzip stream cut short
    write("bad_magic-idx1-ubyte", struct.pack("<I", 0x801) + struct.pack(">I", 5) + bytes(5))  # little-endian magic
    write("bad_label-idx1-ubyte", idx([5], [1, 2, 12, 3, 4]))         # label 12 at byte offset 10
    write("bad_size.bin", b"".join(records[:2]) + records[2][:100])    # partial record at 6146
    bad = bytearray(b"".join(records[:2]))
    bad[3073] = 10                                                    # label 10 at byte offset 3073
    write("bad_label.bin", bytes(bad))


if __name__ == "__main__":
    main()
