#!/usr/bin/env python3
"""Writes the malformed fixtures of crates/dosepaint-io/tests/data/bad/.

Run from the repository root:  python3 crates/dosepaint-io/scripts/make_bad_files.py
Needs numpy, scipy and pydicom (pip install pydicom numpy scipy). Each file
written here has a test in tests/io.rs that expects a named error. The
dose-influence cache files are written from the format documented in
src/cache.rs and docs/formats.md (an independent implementation of the
format: the valid one, good_cache.dpinf, must read back in Rust).
"""
import io
import json
import os
import struct
import zlib

import numpy as np
import pydicom
import scipy.sparse

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data")
BAD = os.path.join(DATA, "bad")


def nifti1(dim, datatype=16, bitpix=32, sizeof=348, vox_offset=352.0, data=b""):
    h = bytearray(348)
    struct.pack_into("<i", h, 0, sizeof)
    struct.pack_into("<8h", h, 40, *dim)
    struct.pack_into("<hh", h, 70, datatype, bitpix)
    struct.pack_into("<8f", h, 76, 1, 1, 1, 1, 1, 1, 1, 1)
    struct.pack_into("<f", h, 108, vox_offset)
    h[123] = 2
    h[344:348] = b"n+1\0"
    return bytes(h) + b"\0\0\0\0" + data


def write(name, content):
    with open(os.path.join(BAD, name), "wb") as f:
        f.write(content)


def main():
    os.makedirs(BAD, exist_ok=True)
    # NIfTI
    full = np.arange(64, dtype="<f4").tobytes()
    write("nifti_truncated.nii", nifti1([3, 4, 4, 4, 1, 1, 1, 1], data=full[:100]))
    write("nifti_absurd_dims.nii", nifti1([3, 30000, 30000, 30000, 1, 1, 1, 1]))
    write("nifti_bad_sizeof.nii", nifti1([3, 4, 4, 4, 1, 1, 1, 1], sizeof=1234, data=full))
    write("nifti_4d.nii", nifti1([4, 2, 2, 2, 3, 1, 1, 1], data=np.arange(24, dtype="<f4").tobytes()))
    write("nifti_rgb.nii", nifti1([3, 2, 2, 2, 1, 1, 1, 1], datatype=128, bitpix=24, data=bytes(24)))
    write("nifti_negative_dim.nii", nifti1([3, 4, -5, 4, 1, 1, 1, 1], data=full))

    # DICOM
    write("not_dicom.dcm", b"This is a text file, not DICOM.\n" * 8)
    ds = pydicom.dcmread(os.path.join(DATA, "CT_small.dcm"))
    del ds.PixelSpacing
    ds.save_as(os.path.join(BAD, "ct_missing_pixel_spacing.dcm"))
    ds = pydicom.dcmread(os.path.join(DATA, "rtdose_1frame.dcm"), force=True)
    ds.NumberOfFrames = 2000000
    ds.Rows = 60000
    ds.Columns = 60000
    ds.save_as(os.path.join(BAD, "rtdose_absurd_size.dcm"), enforce_file_format=False)

    # Dose-influence caches per the documented format.
    grid = {"dims": [2, 2, 1], "spacing_mm": [1.0, 1.0, 1.0], "origin_mm": [0.0, 0.0, 0.0],
            "direction": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]}
    layout = {"bixel_width_mm": 5.0, "leaf_width_mm": 5.0,
              "beams": [{"n_rows": 1, "n_cols": 2, "x0_mm": 0.0, "y0_mm": 0.0}],
              "beamlets": [{"beam": 0, "row": 0, "col": 0}, {"beam": 0, "row": 0, "col": 1}]}
    voxels = [0, 3]
    row_ptr = [0, 2, 3]
    cols = [0, 1, 1]
    vals = [1.0, 0.5, 2.0]
    header = json.dumps({"grid": grid, "layout": layout, "n_rows": 2, "nnz": 3,
                         "description": "written by make_bad_files.py"}).encode()
    body = b"DPINFLU\0" + struct.pack("<II", 1, len(header)) + header
    body += struct.pack("<2I", *voxels) + struct.pack("<3Q", *row_ptr)
    body += struct.pack("<3I", *cols) + struct.pack("<3f", *vals)
    good = body + struct.pack("<I", zlib.crc32(body))
    with open(os.path.join(DATA, "good_cache.dpinf"), "wb") as f:
        f.write(good)
    flipped = bytearray(good)
    flipped[-8] ^= 0x40  # a bit of the last value
    write("cache_corrupt.dpinf", bytes(flipped))
    v2 = b"DPINFLU\0" + struct.pack("<II", 2, len(header)) + body[16:]
    write("cache_version2.dpinf", v2 + struct.pack("<I", zlib.crc32(v2)))
    write("cache_truncated.dpinf", good[:-10])

    # scipy .npz: a 3 x 2 matrix (wrong shape for the 2x2x1 grid) and a non-archive.
    buf = io.BytesIO()
    scipy.sparse.save_npz(buf, scipy.sparse.csr_matrix(np.ones((3, 2))))
    write("npz_wrong_shape.npz", buf.getvalue())
    write("npz_not_zip.npz", b"PK\x03\x04 not really a zip archive")

    # A valid matRad-ordered matrix: cube [ny, nx, nz] = [2, 3, 2] (12 voxels),
    # 2 beamlets; entry (m, b) = 100 b + m + 1 for matRad rows m = 0, 1, 4, 7, 11
    # (0-based column-major over [ny, nx, nz]); saved as CSC (matRad's own
    # layout) and as CSR with float32 data.
    rows, cols_, vals_ = [], [], []
    for b in range(2):
        for m in (0, 1, 4, 7, 11):
            rows.append(m)
            cols_.append(b)
            vals_.append(100 * b + m + 1)
    mat = scipy.sparse.csc_matrix((np.array(vals_, float), (rows, cols_)), shape=(12, 2))
    scipy.sparse.save_npz(os.path.join(DATA, "matrad_csc.npz"), mat)
    scipy.sparse.save_npz(os.path.join(DATA, "matrad_csr.npz"), mat.tocsr().astype(np.float32))


if __name__ == "__main__":
    main()
