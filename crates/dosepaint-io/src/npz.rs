//! Import of dose-influence matrices saved by scipy (`scipy.sparse.save_npz`),
//! as pyRadPlan and Python exports of matRad produce them.
//!
//! The archive holds `data.npy`, `indices.npy`, `indptr.npy`, `shape.npy`
//! and `format.npy` (`csr` or `csc`); the matrix is voxels x beamlets. The
//! `.npy` headers are parsed here (format versions 1 to 3, little- or
//! big-endian numbers).
//!
//! **Voxel order.** matRad numbers voxels column-major over its cube of
//! size `[ny, nx, nz]` (MATLAB: rows = y first): the 1-based MATLAB index
//! `y + ny (x - 1 + nx (z - 1))` becomes, 0-based as in the exported matrix,
//! `m = j + ny (i + nx k)` for the voxel `(i, j, k)` = (x, y, z) of the
//! same cube. dosepaint's linear index is `(k ny + j) nx + i` (x fastest).
//! With [`VoxelOrder::MatRad`] the importer converts `m` to that index,
//! taking matRad's x, y, z axes as the grid's i, j, k axes (as when the cube
//! was imported from the same DICOM CT). [`VoxelOrder::XFastest`] takes the
//! row index as dosepaint's linear index unchanged.

use std::io::Read;
use std::path::Path;

use dosepaint_core::{BeamletLayout, DoseInfluence, Grid};

use crate::endian::little_endian;
use crate::{Error, Result};

/// How the rows of an imported matrix number the voxels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum VoxelOrder {
    /// matRad: column-major over `[ny, nx, nz]`, `m = j + ny (i + nx k)`.
    MatRad,
    /// dosepaint (and NumPy C order over `(nz, ny, nx)`):
    /// `n = (k ny + j) nx + i`.
    XFastest,
}

/// dosepaint's linear voxel index of matRad's 0-based index `m` on a grid
/// of `dims = [nx, ny, nz]`; `None` outside the grid.
///
/// ```
/// use dosepaint_io::matrad_to_linear;
/// // Cube [ny, nx, nz] = [3, 4, 2]: voxel (i, j, k) = (1, 2, 1) has matRad
/// // index 2 + 3 (1 + 4 * 1) = 17 and dosepaint index (1 * 3 + 2) * 4 + 1 = 21.
/// assert_eq!(matrad_to_linear(17, [4, 3, 2]), Some(21));
/// ```
pub fn matrad_to_linear(m: u64, dims: [usize; 3]) -> Option<u64> {
    let [nx, ny, nz] = dims.map(|d| d as u64);
    if m >= nx * ny * nz {
        return None;
    }
    let j = m % ny;
    let i = (m / ny) % nx;
    let k = m / (nx * ny);
    Some((k * ny + j) * nx + i)
}

/// matRad's 0-based index of dosepaint's linear index `n` (inverse of
/// [`matrad_to_linear`]).
pub fn linear_to_matrad(n: u64, dims: [usize; 3]) -> Option<u64> {
    let [nx, ny, nz] = dims.map(|d| d as u64);
    if n >= nx * ny * nz {
        return None;
    }
    let i = n % nx;
    let j = (n / nx) % ny;
    let k = n / (nx * ny);
    Some(j + ny * (i + nx * k))
}

/// A decoded `.npy` array: its shape and values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NpyData {
    Float(Vec<f64>),
    Int(Vec<i64>),
    Text(Vec<String>),
}

#[derive(Debug)]
struct NpyHeader {
    descr: String,
    fortran: bool,
    shape: Vec<u64>,
}

fn npy_err(name: &str, reason: impl Into<String>) -> Error {
    Error::Npy {
        path: name.to_string(),
        reason: reason.into(),
    }
}

fn parse_header(text: &str, name: &str) -> Result<NpyHeader> {
    let field = |key: &str| -> Result<&str> {
        let at = text
            .find(&format!("'{key}'"))
            .ok_or_else(|| npy_err(name, format!("header has no '{key}': {text}")))?;
        let rest = &text[at + key.len() + 2..];
        let colon = rest
            .find(':')
            .ok_or_else(|| npy_err(name, format!("malformed header: {text}")))?;
        Ok(rest[colon + 1..].trim_start())
    };
    let d = field("descr")?;
    let descr = d
        .strip_prefix('\'')
        .and_then(|s| s.split('\'').next())
        .ok_or_else(|| npy_err(name, format!("malformed descr in {text}")))?
        .to_string();
    let fortran = field("fortran_order")?.starts_with("True");
    let s = field("shape")?;
    let inner = s
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| npy_err(name, format!("malformed shape in {text}")))?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.trim_end_matches('L')
                .parse::<u64>()
                .map_err(|_| npy_err(name, format!("shape entry \"{p}\"")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(NpyHeader {
        descr,
        fortran,
        shape,
    })
}

/// Reads one `.npy` array from a stream, reading at most what its header
/// announces (and refusing more than `max_bytes`).
pub(crate) fn read_npy(
    mut r: impl Read,
    name: &str,
    max_bytes: u64,
) -> Result<(Vec<u64>, NpyData)> {
    let io = |e: std::io::Error| npy_err(name, format!("read error: {e}"));
    let mut pre = [0u8; 10];
    r.read_exact(&mut pre).map_err(io)?;
    if &pre[..6] != b"\x93NUMPY" {
        return Err(npy_err(name, "not a .npy file (bad magic)"));
    }
    let hlen = match pre[6] {
        1 => u16::from_le_bytes([pre[8], pre[9]]) as usize,
        2 | 3 => {
            let mut more = [0u8; 2];
            r.read_exact(&mut more).map_err(io)?;
            u32::from_le_bytes([pre[8], pre[9], more[0], more[1]]) as usize
        }
        v => return Err(npy_err(name, format!(".npy format version {v}"))),
    };
    if hlen > 1 << 20 {
        return Err(npy_err(name, format!("header of {hlen} bytes")));
    }
    let mut htext = vec![0u8; hlen];
    r.read_exact(&mut htext).map_err(io)?;
    let text = String::from_utf8_lossy(&htext).to_string();
    let h = parse_header(&text, name)?;
    if h.fortran && h.shape.len() > 1 {
        return Err(npy_err(
            name,
            "Fortran-ordered multi-dimensional arrays are not read",
        ));
    }
    let count = h
        .shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(|| npy_err(name, "shape overflows"))?;
    let (order, kind, size) = {
        let b = h.descr.as_bytes();
        if b.len() < 3 {
            return Err(npy_err(name, format!("dtype '{}'", h.descr)));
        }
        let size: u64 = h.descr[2..]
            .parse()
            .map_err(|_| npy_err(name, format!("dtype '{}'", h.descr)))?;
        (b[0], b[1], size)
    };
    let itemsize = if kind == b'U' { 4 * size } else { size };
    let bytes = count
        .checked_mul(itemsize)
        .filter(|&b| b <= max_bytes)
        .ok_or_else(|| Error::TooLarge {
            what: format!("array {name}"),
            size: format!("{count} x {itemsize} bytes"),
            limit: format!("{max_bytes} bytes"),
        })?;
    let mut raw = Vec::new();
    r.take(bytes).read_to_end(&mut raw).map_err(io)?;
    if (raw.len() as u64) < bytes {
        return Err(Error::Truncated {
            what: format!("array {name}"),
            expected: bytes,
            found: raw.len() as u64,
        });
    }
    let big = order == b'>';
    macro_rules! nums {
        ($t:ty, $n:expr) => {
            raw.chunks_exact($n)
                .map(|c| <$t>::from_le_bytes(little_endian(c, big)))
        };
    }
    let data = match (kind, size) {
        (b'f', 4) => NpyData::Float(nums!(f32, 4).map(f64::from).collect()),
        (b'f', 8) => NpyData::Float(nums!(f64, 8).collect()),
        (b'i', 1) => NpyData::Int(raw.iter().map(|&b| i64::from(b as i8)).collect()),
        (b'u', 1) => NpyData::Int(raw.iter().map(|&b| i64::from(b)).collect()),
        (b'i', 2) => NpyData::Int(nums!(i16, 2).map(i64::from).collect()),
        (b'u', 2) => NpyData::Int(nums!(u16, 2).map(i64::from).collect()),
        (b'i', 4) => NpyData::Int(nums!(i32, 4).map(i64::from).collect()),
        (b'u', 4) => NpyData::Int(nums!(u32, 4).map(i64::from).collect()),
        (b'i', 8) => NpyData::Int(nums!(i64, 8).collect()),
        (b'u', 8) => NpyData::Int(
            nums!(u64, 8)
                .map(|v| {
                    i64::try_from(v).map_err(|_| npy_err(name, format!("value {v} too large")))
                })
                .collect::<Result<_>>()?,
        ),
        (b'S', n) => NpyData::Text(
            raw.chunks_exact(n.max(1) as usize)
                .map(|c| {
                    String::from_utf8_lossy(c)
                        .trim_end_matches('\0')
                        .to_string()
                })
                .collect(),
        ),
        (b'U', n) => NpyData::Text(
            raw.chunks_exact(4 * n.max(1) as usize)
                .map(|c| {
                    c.chunks_exact(4)
                        .map(|u| u32::from_le_bytes(little_endian(u, big)))
                        .take_while(|&u| u != 0)
                        .filter_map(char::from_u32)
                        .collect()
                })
                .collect(),
        ),
        _ => return Err(npy_err(name, format!("dtype '{}' is not read", h.descr))),
    };
    Ok((h.shape, data))
}

/// Largest array accepted from an archive member (bytes).
const MAX_MEMBER: u64 = 1 << 36;

/// Imports a scipy sparse matrix (`save_npz`, CSR or CSC) of shape
/// `(grid voxels, beamlets)` as a [`DoseInfluence`] on `grid` with `layout`.
/// Rows are renumbered from `order` to dosepaint's linear index (see the
/// module docs); the matrix keeps the voxels that have at least one
/// non-zero entry. Values are converted to `f32` (Gy per unit weight).
///
/// # Errors
/// [`Error::Npy`] for a malformed archive or member; [`Error::InvalidInput`]
/// when the shape does not match the grid and layout; [`Error::Core`] for a
/// non-finite value.
pub fn import_npz(
    path: impl AsRef<Path>,
    grid: Grid,
    layout: BeamletLayout,
    order: VoxelOrder,
) -> Result<DoseInfluence> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    import_npz_from(
        std::io::BufReader::new(file),
        &path.display().to_string(),
        grid,
        layout,
        order,
    )
}

/// As [`import_npz`], from any seekable reader.
///
/// # Errors
/// As [`import_npz`].
pub fn import_npz_from<R: Read + std::io::Seek>(
    reader: R,
    name: &str,
    grid: Grid,
    layout: BeamletLayout,
    order: VoxelOrder,
) -> Result<DoseInfluence> {
    let mut zip = zip::ZipArchive::new(reader)
        .map_err(|e| npy_err(name, format!("not a readable .npz (zip) archive: {e}")))?;
    let mut member = |m: &str| -> Result<(Vec<u64>, NpyData)> {
        let full = format!("{name}:{m}");
        let f = zip
            .by_name(m)
            .map_err(|e| npy_err(&full, format!("missing from the archive: {e}")))?;
        read_npy(f, &full, MAX_MEMBER)
    };
    let format = match member("format.npy")?.1 {
        NpyData::Text(t) if t.len() == 1 => t[0].clone(),
        other => return Err(npy_err(name, format!("format.npy holds {other:?}"))),
    };
    let shape = match member("shape.npy")?.1 {
        NpyData::Int(v) if v.len() == 2 && v.iter().all(|&x| x >= 0) => [v[0] as u64, v[1] as u64],
        other => return Err(npy_err(name, format!("shape.npy holds {other:?}"))),
    };
    let ints = |d: NpyData, what: &str| -> Result<Vec<i64>> {
        match d {
            NpyData::Int(v) => Ok(v),
            _ => Err(npy_err(name, format!("{what} is not an integer array"))),
        }
    };
    let indptr = ints(member("indptr.npy")?.1, "indptr.npy")?;
    let indices = ints(member("indices.npy")?.1, "indices.npy")?;
    let data = match member("data.npy")?.1 {
        NpyData::Float(v) => v,
        NpyData::Int(v) => v.into_iter().map(|x| x as f64).collect(),
        NpyData::Text(_) => return Err(npy_err(name, "data.npy holds text")),
    };
    let n_vox = grid.n_voxels() as u64;
    let n_beamlets = layout.len() as u64;
    if shape != [n_vox, n_beamlets] {
        return Err(Error::input(
            format!("matrix {name}"),
            format!(
                "shape {shape:?} but the grid has {n_vox} voxels and the layout {n_beamlets} \
                 beamlets"
            ),
        ));
    }
    let (outer, inner_bound) = match format.as_str() {
        "csr" => (shape[0], shape[1]),
        "csc" => (shape[1], shape[0]),
        other => {
            return Err(npy_err(
                name,
                format!("format \"{other}\": only csr and csc are read"),
            ));
        }
    };
    if indptr.len() as u64 != outer + 1 || indices.len() != data.len() {
        return Err(npy_err(
            name,
            format!(
                "indptr has {} entries for {outer} {}, indices {} and data {}",
                indptr.len(),
                if format == "csr" { "rows" } else { "columns" },
                indices.len(),
                data.len()
            ),
        ));
    }
    if indptr[0] != 0
        || indptr.windows(2).any(|w| w[0] > w[1])
        || *indptr.last().expect("outer + 1 >= 1 entries") as usize != data.len()
    {
        return Err(npy_err(
            name,
            "indptr does not rise from 0 to the number of entries",
        ));
    }
    let dims = grid.dims();
    let to_linear = |row: u64| -> Option<u64> {
        match order {
            VoxelOrder::MatRad => matrad_to_linear(row, dims),
            VoxelOrder::XFastest => (row < n_vox).then_some(row),
        }
    };
    // (voxel, beamlet, value) with voxel in dosepaint order.
    let mut entries: Vec<(u32, u32, f32)> = Vec::with_capacity(data.len());
    for o in 0..outer as usize {
        for e in indptr[o] as usize..indptr[o + 1] as usize {
            let inner = indices[e];
            if inner < 0 || inner as u64 >= inner_bound {
                return Err(npy_err(
                    name,
                    format!("index {inner} out of range 0..{inner_bound}"),
                ));
            }
            let (row, col) = if format == "csr" {
                (o as u64, inner as u64)
            } else {
                (inner as u64, o as u64)
            };
            let v = data[e];
            if v == 0.0 {
                continue;
            }
            let voxel = to_linear(row).expect("row checked against the shape");
            entries.push((voxel as u32, col as u32, v as f32));
        }
    }
    let mut voxels: Vec<u32> = entries.iter().map(|e| e.0).collect();
    voxels.sort_unstable();
    voxels.dedup();
    let triplets = entries.into_iter().map(|(v, c, x)| {
        let r = voxels.binary_search(&v).expect("voxel listed") as u32;
        (r, c, x)
    });
    let triplets: Vec<(u32, u32, f32)> = triplets.collect();
    Ok(DoseInfluence::from_triplets(
        grid, voxels, layout, triplets,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn matrad_index_round_trips(nx in 1usize..9, ny in 1usize..9, nz in 1usize..5, f in 0.0f64..1.0) {
            let n = ((nx * ny * nz) as f64 * f) as u64;
            let m = linear_to_matrad(n, [nx, ny, nz]).unwrap();
            prop_assert_eq!(matrad_to_linear(m, [nx, ny, nz]), Some(n));
        }
    }

    #[test]
    fn matrad_order_is_column_major_over_y_x_z() {
        // Consecutive matRad indices walk along y (j) first, then x, then z.
        let dims = [4, 3, 2];
        assert_eq!(matrad_to_linear(0, dims), Some(0));
        assert_eq!(matrad_to_linear(1, dims), Some(4)); // (i, j, k) = (0, 1, 0)
        assert_eq!(matrad_to_linear(3, dims), Some(1)); // (1, 0, 0)
        assert_eq!(matrad_to_linear(12, dims), Some(12)); // (0, 0, 1)
        assert_eq!(matrad_to_linear(24, dims), None);
    }

    #[test]
    fn npy_header_parsing() {
        let h = parse_header(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (12, 3), }",
            "t",
        )
        .unwrap();
        assert_eq!(h.descr, "<f8");
        assert!(!h.fortran);
        assert_eq!(h.shape, vec![12, 3]);
        let h = parse_header(
            "{'descr': '<U3', 'fortran_order': False, 'shape': (), }",
            "t",
        )
        .unwrap();
        assert!(h.shape.is_empty());
    }
}
