//! The dose-influence cache: a versioned, checksummed binary file holding a
//! [`DoseInfluence`] with its grid, row -> voxel map and beamlet layout.
//!
//! Layout (all integers little-endian):
//!
//! | offset | size | content |
//! |---|---|---|
//! | 0 | 8 | magic `DPINFLU\0` |
//! | 8 | 4 | format version, `u32` (this build: [`CACHE_VERSION`]) |
//! | 12 | 4 | header length `H`, `u32` |
//! | 16 | `H` | header: UTF-8 JSON `{"grid", "layout", "n_rows", "nnz", "description"}` (serde forms of `Grid` and `BeamletLayout`) |
//! | 16 + H | 4 `n_rows` | row -> voxel map, `u32` (linear voxel index, x fastest) |
//! | ... | 8 (`n_rows` + 1) | CSR row pointers, `u64` |
//! | ... | 4 `nnz` | column (beamlet) indices, `u32` |
//! | ... | 4 `nnz` | values, `f32` (Gy per unit weight) |
//! | end - 4 | 4 | CRC-32 (IEEE 802.3, as `crc32fast`) of every byte before it |
//!
//! The reader checks the magic, the version, that the file length equals
//! what the header announces (before allocating anything), then the
//! checksum, then the matrix itself (through `DoseInfluence::from_csr`).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use dosepaint_core::{BeamletLayout, DoseInfluence, Grid};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Magic bytes at the start of a cache file.
pub const CACHE_MAGIC: &[u8; 8] = b"DPINFLU\0";
/// The format version this build writes and reads.
pub const CACHE_VERSION: u32 = 1;
/// Largest accepted JSON header, bytes.
const MAX_HEADER: u32 = 1 << 30;

#[derive(Serialize, Deserialize)]
struct Header {
    grid: Grid,
    layout: BeamletLayout,
    n_rows: u64,
    nnz: u64,
    description: String,
}

/// Writes `d` as a cache file; `description` is stored in the header (e.g.
/// the engine and its settings, so a stale cache can be recognised).
///
/// # Errors
/// [`Error::Io`].
pub fn write_influence_cache(
    path: impl AsRef<Path>,
    d: &DoseInfluence,
    description: &str,
) -> Result<()> {
    let path = path.as_ref();
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    write_cache_to(&mut w, d, description).map_err(|e| Error::io(path, e))?;
    w.flush().map_err(|e| Error::io(path, e))
}

/// Writes the cache bytes of `d` to any writer.
///
/// # Errors
/// The writer's I/O errors.
pub fn write_cache_to(
    w: &mut impl Write,
    d: &DoseInfluence,
    description: &str,
) -> std::io::Result<()> {
    let (row_ptr, cols, vals) = d.to_csr();
    let header = Header {
        grid: d.grid().clone(),
        layout: d.layout().clone(),
        n_rows: d.n_rows() as u64,
        nnz: cols.len() as u64,
        description: description.to_string(),
    };
    let json = serde_json::to_vec(&header).map_err(std::io::Error::other)?;
    let mut crc = crc32fast::Hasher::new();
    let mut put = |w: &mut dyn Write, bytes: &[u8]| -> std::io::Result<()> {
        crc.update(bytes);
        w.write_all(bytes)
    };
    put(w, CACHE_MAGIC)?;
    put(w, &CACHE_VERSION.to_le_bytes())?;
    put(w, &(json.len() as u32).to_le_bytes())?;
    put(w, &json)?;
    let mut buf = Vec::with_capacity(1 << 16);
    macro_rules! array {
        ($xs:expr) => {
            for chunk in $xs.chunks(8192) {
                buf.clear();
                for x in chunk {
                    buf.extend_from_slice(&x.to_le_bytes());
                }
                put(w, &buf)?;
            }
        };
    }
    array!(d.voxels());
    array!(row_ptr);
    array!(cols);
    array!(vals);
    let sum = crc.finalize();
    w.write_all(&sum.to_le_bytes())
}

/// Reads a cache file.
///
/// # Errors
/// [`Error::Cache`] (not a cache, inconsistent header or length),
/// [`Error::CacheVersion`], [`Error::Checksum`], [`Error::Io`], and core
/// errors for an invalid matrix.
pub fn read_influence_cache(path: impl AsRef<Path>) -> Result<DoseInfluence> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    read_cache_from(
        BufReader::with_capacity(1 << 20, file),
        len,
        &path.display().to_string(),
    )
}

/// Reads a cache of known total length `len` from any reader.
///
/// # Errors
/// As [`read_influence_cache`].
pub fn read_cache_from(mut r: impl Read, len: u64, name: &str) -> Result<DoseInfluence> {
    let bad = |reason: String| Error::Cache {
        path: name.to_string(),
        reason,
    };
    let io = |e: std::io::Error| Error::io(name, e);
    if len < 20 {
        return Err(bad(format!("{len} bytes is too short for a cache file")));
    }
    let mut crc = crc32fast::Hasher::new();
    let mut fixed = [0u8; 16];
    r.read_exact(&mut fixed).map_err(io)?;
    crc.update(&fixed);
    if &fixed[..8] != CACHE_MAGIC {
        return Err(bad(
            "not a dosepaint dose-influence cache (bad magic bytes)".into(),
        ));
    }
    let version = u32::from_le_bytes(fixed[8..12].try_into().expect("4 bytes"));
    if version != CACHE_VERSION {
        return Err(Error::CacheVersion {
            path: name.to_string(),
            found: version,
            supported: CACHE_VERSION,
        });
    }
    let h = u32::from_le_bytes(fixed[12..16].try_into().expect("4 bytes"));
    if h > MAX_HEADER || u64::from(h) + 20 > len {
        return Err(bad(format!(
            "header length {h} does not fit a {len}-byte file"
        )));
    }
    let mut json = vec![0u8; h as usize];
    r.read_exact(&mut json).map_err(io)?;
    crc.update(&json);
    let header: Header = serde_json::from_slice(&json)
        .map_err(|e| bad(format!("header is not valid (corrupt file?): {e}")))?;
    let expected = [4u64, 8, 4, 4]
        .iter()
        .zip([
            header.n_rows,
            header.n_rows.saturating_add(1),
            header.nnz,
            header.nnz,
        ])
        .try_fold(u64::from(h) + 20, |acc, (size, count)| {
            size.checked_mul(count).and_then(|b| acc.checked_add(b))
        })
        .ok_or_else(|| bad("array sizes overflow".into()))?;
    if expected != len {
        return Err(bad(format!(
            "the header announces {} rows and {} entries ({expected} bytes) but the file has \
             {len} bytes (truncated or corrupt)",
            header.n_rows, header.nnz
        )));
    }
    let n_rows = header.n_rows as usize;
    let nnz = header.nnz as usize;
    let mut read_array = |bytes_per: usize, count: usize| -> Result<Vec<u8>> {
        let mut b = vec![0u8; bytes_per * count];
        r.read_exact(&mut b).map_err(io)?;
        crc.update(&b);
        Ok(b)
    };
    let voxels: Vec<u32> = read_array(4, n_rows)?
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    let row_ptr: Vec<u64> = read_array(8, n_rows + 1)?
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    let cols: Vec<u32> = read_array(4, nnz)?
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    let vals: Vec<f32> = read_array(4, nnz)?
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    let mut stored = [0u8; 4];
    r.read_exact(&mut stored).map_err(io)?;
    let stored = u32::from_le_bytes(stored);
    let computed = crc.finalize();
    if stored != computed {
        return Err(Error::Checksum {
            path: name.to_string(),
            stored,
            computed,
        });
    }
    if header.layout.len() > u32::MAX as usize {
        return Err(bad("layout too large".into()));
    }
    Ok(DoseInfluence::from_csr(
        header.grid,
        voxels,
        header.layout,
        &row_ptr,
        &cols,
        &vals,
    )?)
}
