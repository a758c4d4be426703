//! NIfTI-1 and NIfTI-2 (`.nii`, `.nii.gz`) reading, NIfTI-1 writing.
//!
//! NIfTI stores positions in RAS+ (x to the patient's right... left, see
//! below); dosepaint works in DICOM LPS. The conversion happens here and
//! nowhere else: a NIfTI world point `(x, y, z)` is the LPS point
//! `(-x, -y, z)`.
//!
//! The header of a NIfTI-1 file is parsed by the `nifti` crate; NIfTI-2
//! headers (which that crate does not read) and the voxel data are decoded
//! here, so that no `ndarray` other than the workspace's is pulled in and the
//! size of the data is checked before anything is allocated.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use dosepaint_core::{Grid, MAX_VOXELS, Volume};
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use crate::endian::little_endian;
use crate::{Error, Result};

/// Bytes of a NIfTI-1 header.
const N1_HEADER: usize = 348;
/// Bytes of a NIfTI-2 header.
const N2_HEADER: usize = 540;
/// Tolerance on the orthogonality of the axes of an sform (cosine).
const ORTHO_TOL: f64 = 1e-4;

/// NIfTI voxel data types read and written by this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum NiftiDatatype {
    /// `DT_UINT8` (2).
    U8,
    /// `DT_INT16` (4).
    I16,
    /// `DT_UINT16` (512).
    U16,
    /// `DT_INT32` (8).
    I32,
    /// `DT_FLOAT32` (16).
    F32,
    /// `DT_FLOAT64` (64).
    F64,
}

impl NiftiDatatype {
    /// The NIfTI `datatype` code.
    pub fn code(self) -> i16 {
        match self {
            Self::U8 => 2,
            Self::I16 => 4,
            Self::U16 => 512,
            Self::I32 => 8,
            Self::F32 => 16,
            Self::F64 => 64,
        }
    }

    /// Bytes per voxel.
    pub fn size(self) -> usize {
        match self {
            Self::U8 => 1,
            Self::I16 | Self::U16 => 2,
            Self::I32 | Self::F32 => 4,
            Self::F64 => 8,
        }
    }

    fn from_code(code: i16) -> std::result::Result<Self, String> {
        Ok(match code {
            2 => Self::U8,
            4 => Self::I16,
            512 => Self::U16,
            8 => Self::I32,
            16 => Self::F32,
            64 => Self::F64,
            other => {
                let name = match other {
                    0 => "DT_UNKNOWN",
                    1 => "DT_BINARY",
                    32 => "DT_COMPLEX64",
                    128 => "DT_RGB24",
                    256 => "DT_INT8",
                    768 => "DT_UINT32",
                    1024 => "DT_INT64",
                    1280 => "DT_UINT64",
                    1536 => "DT_FLOAT128",
                    1792 => "DT_COMPLEX128",
                    2048 => "DT_COMPLEX256",
                    2304 => "DT_RGBA32",
                    _ => "not a NIfTI type",
                };
                return Err(format!(
                    "{name} (code {other}); readable: uint8, int16, uint16, int32, float32, float64"
                ));
            }
        })
    }
}

/// Voxel types that can be written to (and are read from) NIfTI files.
///
/// Implemented for `u8`, `i16`, `u16`, `i32`, `f32` and `f64`; sealed.
pub trait NiftiElement: Copy + Send + Sync + 'static + private::Sealed {
    /// The NIfTI data type of this Rust type.
    const DATATYPE: NiftiDatatype;
    /// Appends the little-endian bytes of `self`.
    fn put_le(self, out: &mut Vec<u8>);
    /// The value as `f64`.
    fn as_f64(self) -> f64;
}

mod private {
    pub trait Sealed {}
    impl Sealed for u8 {}
    impl Sealed for i16 {}
    impl Sealed for u16 {}
    impl Sealed for i32 {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

macro_rules! element {
    ($t:ty, $dt:ident) => {
        impl NiftiElement for $t {
            const DATATYPE: NiftiDatatype = NiftiDatatype::$dt;
            #[inline]
            fn put_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            #[inline]
            fn as_f64(self) -> f64 {
                f64::from(self)
            }
        }
    };
}
element!(u8, U8);
element!(i16, I16);
element!(u16, U16);
element!(i32, I32);
element!(f32, F32);
element!(f64, F64);

/// The voxel values of a NIfTI file as stored (before `scl_slope`/`scl_inter`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum NiftiData {
    /// `uint8` voxels.
    U8(Volume<u8>),
    /// `int16` voxels.
    I16(Volume<i16>),
    /// `uint16` voxels.
    U16(Volume<u16>),
    /// `int32` voxels.
    I32(Volume<i32>),
    /// `float32` voxels.
    F32(Volume<f32>),
    /// `float64` voxels.
    F64(Volume<f64>),
}

macro_rules! each_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            NiftiData::U8($v) => $body,
            NiftiData::I16($v) => $body,
            NiftiData::U16($v) => $body,
            NiftiData::I32($v) => $body,
            NiftiData::F32($v) => $body,
            NiftiData::F64($v) => $body,
        }
    };
}

impl NiftiData {
    /// The grid (LPS).
    pub fn grid(&self) -> &Grid {
        each_data!(self, v => v.grid())
    }

    /// The stored data type.
    pub fn datatype(&self) -> NiftiDatatype {
        match self {
            Self::U8(_) => NiftiDatatype::U8,
            Self::I16(_) => NiftiDatatype::I16,
            Self::U16(_) => NiftiDatatype::U16,
            Self::I32(_) => NiftiDatatype::I32,
            Self::F32(_) => NiftiDatatype::F32,
            Self::F64(_) => NiftiDatatype::F64,
        }
    }
}

/// Which header fields placed the voxels in space (NIfTI-1 standard, section
/// "3D IMAGE (VOLUME) ORIENTATION AND LOCATION IN SPACE").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpatialSource {
    /// Method 3: the general affine `srow_*` (`sform_code > 0`).
    Sform,
    /// Method 2: quaternion, `qoffset` and `pixdim` (`qform_code > 0`).
    Qform,
    /// Method 1 (both codes 0): spacing only, axes along RAS, origin 0.
    Pixdim,
}

/// Options for [`read_nifti`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NiftiReadOptions {
    /// For 4-D files, the 0-based index of the volume to read; a 4-D file
    /// read without one is refused with [`Error::FourDimensional`].
    pub volume: Option<usize>,
    /// Largest number of voxels accepted (default [`MAX_VOXELS`]).
    pub max_voxels: usize,
}

impl Default for NiftiReadOptions {
    fn default() -> Self {
        Self {
            volume: None,
            max_voxels: MAX_VOXELS,
        }
    }
}

/// A NIfTI volume as read: stored values, scaling and provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct NiftiImage {
    /// The stored voxel values on their grid (LPS).
    pub data: NiftiData,
    /// `scl_slope`, or `None` when the file asks for no scaling (slope 0 or
    /// not finite, per the standard).
    pub scaling: Option<(f64, f64)>,
    /// 1 or 2.
    pub version: u8,
    /// Byte order of the file.
    pub big_endian: bool,
    /// How the grid was placed.
    pub spatial_source: SpatialSource,
    /// Voxels whose (scaled) value is NaN or infinite. They are kept in the
    /// data, never replaced: a caller decides what to do with them.
    pub non_finite_voxels: usize,
    /// Number of 3-D volumes in the file and the one that was read.
    pub volumes_in_file: usize,
    /// Index of the volume read.
    pub volume_index: usize,
    /// The `descrip` field.
    pub description: String,
}

impl NiftiImage {
    /// The grid (LPS, mm).
    pub fn grid(&self) -> &Grid {
        self.data.grid()
    }

    /// Real-world values `slope * stored + inter` as `f32`.
    pub fn to_f32(&self) -> Volume<f32> {
        let (a, b) = self.scaling.unwrap_or((1.0, 0.0));
        each_data!(&self.data, v => v.map(|&x| (a * x.as_f64() + b) as f32))
    }

    /// Real-world values as `f64`.
    pub fn to_f64(&self) -> Volume<f64> {
        let (a, b) = self.scaling.unwrap_or((1.0, 0.0));
        each_data!(&self.data, v => v.map(|&x| a * x.as_f64() + b))
    }
}

/// The parts of a header this crate uses, for both versions.
#[derive(Debug, Clone, PartialEq)]
pub struct NiftiHeader {
    /// 1 or 2.
    pub version: u8,
    /// Byte order.
    pub big_endian: bool,
    /// `dim[0..8]`.
    pub dim: [i64; 8],
    /// `datatype` code.
    pub datatype: i16,
    /// `bitpix`.
    pub bitpix: i16,
    /// `pixdim[0..8]`.
    pub pixdim: [f64; 8],
    /// Byte offset of the voxel data.
    pub vox_offset: f64,
    /// `scl_slope`.
    pub scl_slope: f64,
    /// `scl_inter`.
    pub scl_inter: f64,
    /// `qform_code`.
    pub qform_code: i32,
    /// `sform_code`.
    pub sform_code: i32,
    /// `quatern_b, c, d`.
    pub quatern: [f64; 3],
    /// `qoffset_x, y, z`.
    pub qoffset: [f64; 3],
    /// `srow_x, srow_y, srow_z`.
    pub srow: [[f64; 4]; 3],
    /// `xyzt_units`.
    pub xyzt_units: i32,
    /// `descrip`.
    pub description: String,
}

impl NiftiHeader {
    /// Bytes of the header proper (348 or 540).
    pub fn header_size(&self) -> usize {
        if self.version == 1 {
            N1_HEADER
        } else {
            N2_HEADER
        }
    }

    /// Parses a NIfTI-1 or NIfTI-2 header from the start of `bytes`
    /// (uncompressed), detecting version and byte order from `sizeof_hdr`.
    ///
    /// # Errors
    /// [`Error::NiftiHeader`] or [`Error::Truncated`] naming `path`.
    pub fn parse(bytes: &[u8], path: &str) -> Result<Self> {
        let bad = |reason: String| Error::NiftiHeader {
            path: path.to_string(),
            reason,
        };
        if bytes.len() < 4 {
            return Err(Error::Truncated {
                what: format!("NIfTI header of {path}"),
                expected: N1_HEADER as u64,
                found: bytes.len() as u64,
            });
        }
        let first = [bytes[0], bytes[1], bytes[2], bytes[3]];
        let (le, be) = (i32::from_le_bytes(first), i32::from_be_bytes(first));
        let (version, big_endian) = match (le, be) {
            (348, _) => (1u8, false),
            (_, 348) => (1, true),
            (540, _) => (2, false),
            (_, 540) => (2, true),
            _ => {
                return Err(bad(format!(
                    "sizeof_hdr is {le} (little-endian) / {be} (big-endian), neither 348 \
                     (NIfTI-1) nor 540 (NIfTI-2): not a NIfTI file"
                )));
            }
        };
        let size = if version == 1 { N1_HEADER } else { N2_HEADER };
        if bytes.len() < size {
            return Err(Error::Truncated {
                what: format!("NIfTI-{version} header of {path}"),
                expected: size as u64,
                found: bytes.len() as u64,
            });
        }
        let header = if version == 1 {
            parse_v1(&bytes[..N1_HEADER], big_endian).map_err(bad)?
        } else {
            parse_v2(&bytes[..N2_HEADER], big_endian).map_err(bad)?
        };
        Ok(header)
    }
}

fn parse_v1(bytes: &[u8], big_endian: bool) -> std::result::Result<NiftiHeader, String> {
    let h = nifti::NiftiHeader::from_reader(bytes).map_err(|e| format!("{e}"))?;
    let detected_big = h.endianness == nifti::Endianness::Big;
    if detected_big != big_endian {
        return Err(format!(
            "byte order from sizeof_hdr ({}) contradicts dim[0] = {} ({})",
            if big_endian { "big" } else { "little" },
            h.dim[0],
            if detected_big { "big" } else { "little" }
        ));
    }
    if &h.magic != b"n+1\0" {
        return Err(format!(
            "magic {:?} is not \"n+1\": only single-file .nii (not .hdr/.img pairs) is read",
            String::from_utf8_lossy(&h.magic)
        ));
    }
    Ok(NiftiHeader {
        version: 1,
        big_endian,
        // NIfTI-1 dims are signed 16-bit; the nifti crate stores them as u16.
        dim: h.dim.map(|d| i64::from(d as i16)),
        datatype: h.datatype,
        bitpix: h.bitpix,
        pixdim: h.pixdim.map(f64::from),
        vox_offset: f64::from(h.vox_offset),
        scl_slope: f64::from(h.scl_slope),
        scl_inter: f64::from(h.scl_inter),
        qform_code: i32::from(h.qform_code),
        sform_code: i32::from(h.sform_code),
        quatern: [h.quatern_b, h.quatern_c, h.quatern_d].map(f64::from),
        qoffset: [h.quatern_x, h.quatern_y, h.quatern_z].map(f64::from),
        srow: [h.srow_x, h.srow_y, h.srow_z].map(|r| r.map(f64::from)),
        xyzt_units: i32::from(h.xyzt_units),
        description: c_string(&h.descrip),
    })
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).trim().to_string()
}

/// Little/big-endian field reader over a header buffer.
struct Fields<'a> {
    bytes: &'a [u8],
    big: bool,
}

impl Fields<'_> {
    /// The `N` bytes at `at`, in little-endian order.
    fn le<const N: usize>(&self, at: usize) -> [u8; N] {
        little_endian(&self.bytes[at..at + N], self.big)
    }
    fn i16(&self, at: usize) -> i16 {
        i16::from_le_bytes(self.le(at))
    }
    fn i32(&self, at: usize) -> i32 {
        i32::from_le_bytes(self.le(at))
    }
    fn i64(&self, at: usize) -> i64 {
        i64::from_le_bytes(self.le(at))
    }
    fn f64(&self, at: usize) -> f64 {
        f64::from_le_bytes(self.le(at))
    }
}

/// NIfTI-2 layout (nifti2.h): all offsets in bytes.
fn parse_v2(bytes: &[u8], big_endian: bool) -> std::result::Result<NiftiHeader, String> {
    let f = Fields {
        bytes,
        big: big_endian,
    };
    let magic = &bytes[4..12];
    if &magic[..4] != b"n+2\0" {
        return Err(format!(
            "magic {:?} is not \"n+2\": only single-file NIfTI-2 is read",
            String::from_utf8_lossy(&magic[..3])
        ));
    }
    let mut dim = [0i64; 8];
    for (n, d) in dim.iter_mut().enumerate() {
        *d = f.i64(16 + 8 * n);
    }
    let mut pixdim = [0f64; 8];
    for (n, p) in pixdim.iter_mut().enumerate() {
        *p = f.f64(104 + 8 * n);
    }
    let mut srow = [[0f64; 4]; 3];
    for (r, row) in srow.iter_mut().enumerate() {
        for (c, v) in row.iter_mut().enumerate() {
            *v = f.f64(400 + 32 * r + 8 * c);
        }
    }
    Ok(NiftiHeader {
        version: 2,
        big_endian,
        dim,
        datatype: f.i16(12),
        bitpix: f.i16(14),
        pixdim,
        vox_offset: f.i64(168) as f64,
        scl_slope: f.f64(176),
        scl_inter: f.f64(184),
        qform_code: f.i32(344),
        sform_code: f.i32(348),
        quatern: [f.f64(352), f.f64(360), f.f64(368)],
        qoffset: [f.f64(376), f.f64(384), f.f64(392)],
        srow,
        xyzt_units: f.i32(500),
        description: c_string(&bytes[240..320]),
    })
}

/// Layout of the data a header describes, after validation.
struct Layout {
    dims: [usize; 3],
    volumes: usize,
    datatype: NiftiDatatype,
    voxels: usize,
    data_offset: u64,
}

fn validate(h: &NiftiHeader, path: &str, options: &NiftiReadOptions) -> Result<Layout> {
    let bad = |reason: String| Error::NiftiHeader {
        path: path.to_string(),
        reason,
    };
    let ndim = h.dim[0];
    if !(1..=7).contains(&ndim) {
        return Err(bad(format!("dim[0] = {ndim} is not in 1..=7")));
    }
    let ndim = ndim as usize;
    for a in 1..=ndim {
        if h.dim[a] < 1 {
            return Err(bad(format!("dim[{a}] = {} is not positive", h.dim[a])));
        }
    }
    let d = |a: usize| if a <= ndim { h.dim[a] as u64 } else { 1 };
    let dims_u64 = [d(1), d(2), d(3)];
    if ndim > 4 && (5..=ndim).any(|a| h.dim[a] > 1) {
        return Err(Error::Unsupported {
            path: path.to_string(),
            reason: format!(
                "{ndim}-D data (dim = {:?}): only 3-D and 4-D files are read",
                &h.dim[1..=ndim]
            ),
        });
    }
    let volumes_u64 = d(4);
    let datatype =
        NiftiDatatype::from_code(h.datatype).map_err(|datatype| Error::UnsupportedDatatype {
            path: path.to_string(),
            datatype,
        })?;
    if i64::from(h.bitpix) != 8 * datatype.size() as i64 {
        return Err(bad(format!(
            "bitpix {} does not match datatype {datatype:?} ({} bits)",
            h.bitpix,
            8 * datatype.size()
        )));
    }
    let voxels = dims_u64
        .iter()
        .try_fold(1u64, |acc, &x| acc.checked_mul(x))
        .filter(|&n| n <= options.max_voxels.min(MAX_VOXELS) as u64)
        .ok_or_else(|| Error::TooLarge {
            what: format!("NIfTI volume in {path}"),
            size: format!("{dims_u64:?} voxels"),
            limit: format!("{} voxels", options.max_voxels.min(MAX_VOXELS)),
        })? as usize;
    let volumes =
        usize::try_from(volumes_u64).map_err(|_| bad(format!("dim[4] = {volumes_u64}")))?;
    let min_offset = h.header_size() as f64 + 4.0;
    if !(h.vox_offset.is_finite() && h.vox_offset >= min_offset && h.vox_offset < 1e12) {
        return Err(bad(format!(
            "vox_offset {} must be at least {min_offset} for a single-file NIfTI-{}",
            h.vox_offset, h.version
        )));
    }
    Ok(Layout {
        dims: dims_u64.map(|x| x as usize),
        volumes,
        datatype,
        voxels,
        data_offset: h.vox_offset as u64,
    })
}

/// Spatial unit of `xyzt_units` in mm.
fn unit_mm(xyzt_units: i32) -> f64 {
    match xyzt_units & 7 {
        1 => 1000.0, // NIFTI_UNITS_METER
        3 => 1e-3,   // NIFTI_UNITS_MICRON
        _ => 1.0,    // NIFTI_UNITS_MM, or unknown: mm by convention
    }
}

/// Rotation matrix of a NIfTI quaternion `(b, c, d)`, `a` from unit norm.
fn quaternion_to_rotation([b, c, d]: [f64; 3]) -> [[f64; 3]; 3] {
    let mut a = 1.0 - (b * b + c * c + d * d);
    let (b, c, d) = if a < 1e-7 {
        // Not a unit quaternion: the standard says renormalise (b, c, d), a = 0.
        let n = (b * b + c * c + d * d).sqrt();
        a = 0.0;
        (b / n, c / n, d / n)
    } else {
        a = a.sqrt();
        (b, c, d)
    };
    [
        [
            a * a + b * b - c * c - d * d,
            2.0 * (b * c - a * d),
            2.0 * (b * d + a * c),
        ],
        [
            2.0 * (b * c + a * d),
            a * a + c * c - b * b - d * d,
            2.0 * (c * d - a * b),
        ],
        [
            2.0 * (b * d - a * c),
            2.0 * (c * d + a * b),
            a * a + d * d - c * c - b * b,
        ],
    ]
}

/// NIfTI quaternion `(b, c, d)` of a proper rotation matrix (rows, columns
/// are the axes), choosing `a >= 0`.
fn rotation_to_quaternion(r: [[f64; 3]; 3]) -> [f64; 3] {
    let trace = r[0][0] + r[1][1] + r[2][2] + 1.0;
    let (a, b, c, d);
    if trace > 0.5 {
        a = 0.5 * trace.sqrt();
        b = 0.25 * (r[2][1] - r[1][2]) / a;
        c = 0.25 * (r[0][2] - r[2][0]) / a;
        d = 0.25 * (r[1][0] - r[0][1]) / a;
    } else {
        let xd = 1.0 + r[0][0] - (r[1][1] + r[2][2]);
        let yd = 1.0 + r[1][1] - (r[0][0] + r[2][2]);
        let zd = 1.0 + r[2][2] - (r[0][0] + r[1][1]);
        if xd > 1.0 {
            b = 0.5 * xd.sqrt();
            c = 0.25 * (r[0][1] + r[1][0]) / b;
            d = 0.25 * (r[0][2] + r[2][0]) / b;
            a = 0.25 * (r[2][1] - r[1][2]) / b;
        } else if yd > 1.0 {
            c = 0.5 * yd.sqrt();
            b = 0.25 * (r[0][1] + r[1][0]) / c;
            d = 0.25 * (r[1][2] + r[2][1]) / c;
            a = 0.25 * (r[0][2] - r[2][0]) / c;
        } else {
            d = 0.5 * zd.sqrt();
            b = 0.25 * (r[0][2] + r[2][0]) / d;
            c = 0.25 * (r[1][2] + r[2][1]) / d;
            a = 0.25 * (r[1][0] - r[0][1]) / d;
        }
    }
    if a < 0.0 { [-b, -c, -d] } else { [b, c, d] }
}

/// The voxel-to-RAS affine (3 rows x 4) that the header's precedence rules
/// select, in mm, and its source. Follows the NIfTI-1 standard: method 3
/// (sform) when `sform_code > 0`, else method 2 (qform) when
/// `qform_code > 0`, else method 1 (pixdim only). An sform whose axes are
/// not orthogonal (shear, which a `Grid` cannot hold) falls back to the
/// qform when there is one.
fn ras_affine(h: &NiftiHeader, path: &str) -> Result<([[f64; 4]; 3], SpatialSource)> {
    let bad = |reason: String| Error::NiftiHeader {
        path: path.to_string(),
        reason,
    };
    let unit = unit_mm(h.xyzt_units);
    let pix = |a: usize| -> Result<f64> {
        let p = h.pixdim[a].abs() * unit;
        if p.is_finite() && p > 0.0 {
            Ok(p)
        } else {
            Err(bad(format!(
                "pixdim[{a}] = {} is not a positive spacing",
                h.pixdim[a]
            )))
        }
    };
    if h.sform_code > 0 {
        let m = h.srow.map(|r| r.map(|v| v * unit));
        if m.iter().flatten().all(|v| v.is_finite()) && orthogonal_columns(&m) {
            return Ok((m, SpatialSource::Sform));
        }
        if h.qform_code <= 0 {
            return Err(bad(
                "sform has sheared or degenerate axes and there is no qform to fall back on".into(),
            ));
        }
    }
    if h.qform_code > 0 {
        if !h.quatern.iter().chain(&h.qoffset).all(|v| v.is_finite()) {
            return Err(bad("quaternion or qoffset is not finite".into()));
        }
        let r = quaternion_to_rotation(h.quatern);
        if r.iter().flatten().any(|v| !v.is_finite()) {
            return Err(bad(format!("quaternion {:?} is degenerate", h.quatern)));
        }
        // pixdim[0] is qfac: -1 flips the third axis; anything else counts as 1.
        let qfac = if h.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
        let s = [pix(1)?, pix(2)?, pix(3)? * qfac];
        let mut m = [[0.0; 4]; 3];
        for (row, mrow) in m.iter_mut().enumerate() {
            for c in 0..3 {
                mrow[c] = r[row][c] * s[c];
            }
            mrow[3] = h.qoffset[row] * unit;
        }
        return Ok((m, SpatialSource::Qform));
    }
    let s = [pix(1)?, pix(2)?, pix(3)?];
    Ok((
        [
            [s[0], 0.0, 0.0, 0.0],
            [0.0, s[1], 0.0, 0.0],
            [0.0, 0.0, s[2], 0.0],
        ],
        SpatialSource::Pixdim,
    ))
}

fn column(m: &[[f64; 4]; 3], c: usize) -> [f64; 3] {
    [m[0][c], m[1][c], m[2][c]]
}

fn norm(v: [f64; 3]) -> f64 {
    (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
}

fn orthogonal_columns(m: &[[f64; 4]; 3]) -> bool {
    let cols = [column(m, 0), column(m, 1), column(m, 2)];
    let n = cols.map(norm);
    if n.iter().any(|&x| !(x.is_finite() && x > 0.0)) {
        return false;
    }
    for a in 0..3 {
        for b in a + 1..3 {
            let dot: f64 = (0..3).map(|c| cols[a][c] * cols[b][c]).sum();
            if (dot / (n[a] * n[b])).abs() > ORTHO_TOL {
                return false;
            }
        }
    }
    true
}

/// LPS grid of a voxel-to-RAS affine.
fn grid_from_ras(m: &[[f64; 4]; 3], dims: [usize; 3], path: &str) -> Result<Grid> {
    let mut spacing = [0.0; 3];
    let mut direction = [[0.0; 3]; 3];
    for a in 0..3 {
        let col = column(m, a);
        let n = norm(col);
        spacing[a] = n;
        // RAS -> LPS: negate x and y.
        direction[a] = [-col[0] / n, -col[1] / n, col[2] / n];
    }
    let origin = [-m[0][3], -m[1][3], m[2][3]];
    Grid::with_direction(dims, spacing, origin, direction).map_err(|e| Error::NiftiHeader {
        path: path.to_string(),
        reason: format!("the header's geometry is not a valid grid: {e}"),
    })
}

/// Reads a `.nii` or `.nii.gz` file (gzip is recognised by its magic bytes,
/// not the name).
///
/// # Errors
/// [`Error::Io`], [`Error::NiftiHeader`], [`Error::Truncated`],
/// [`Error::UnsupportedDatatype`], [`Error::FourDimensional`] (a 4-D file
/// without [`NiftiReadOptions::volume`]), [`Error::TooLarge`].
pub fn read_nifti(path: impl AsRef<Path>, options: &NiftiReadOptions) -> Result<NiftiImage> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 2];
    let got = read_up_to(&mut reader, &mut magic).map_err(|e| Error::io(path, e))?;
    let head = std::io::Cursor::new(magic[..got].to_vec());
    if got == 2 && magic == [0x1f, 0x8b] {
        let gz = MultiGzDecoder::new(head.chain(reader));
        read_stream(gz, &name, None, options)
    } else {
        read_stream(head.chain(reader), &name, Some(len), options)
    }
}

/// Reads a NIfTI file held in memory (`.nii` bytes, or gzip-compressed).
///
/// # Errors
/// As [`read_nifti`].
pub fn read_nifti_bytes(
    bytes: &[u8],
    name: &str,
    options: &NiftiReadOptions,
) -> Result<NiftiImage> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        read_stream(MultiGzDecoder::new(bytes), name, None, options)
    } else {
        read_stream(bytes, name, Some(bytes.len() as u64), options)
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn read_err(name: &str, e: std::io::Error) -> Error {
    Error::Io {
        path: name.into(),
        source: e,
    }
}

fn read_stream(
    mut r: impl Read,
    name: &str,
    total_len: Option<u64>,
    options: &NiftiReadOptions,
) -> Result<NiftiImage> {
    let mut head = vec![0u8; N2_HEADER];
    let got = read_up_to(&mut r, &mut head[..4]).map_err(|e| read_err(name, e))?;
    if got < 4 {
        return Err(Error::Truncated {
            what: format!("NIfTI header of {name}"),
            expected: N1_HEADER as u64,
            found: got as u64,
        });
    }
    let first = [head[0], head[1], head[2], head[3]];
    let size = if i32::from_le_bytes(first) == 540 || i32::from_be_bytes(first) == 540 {
        N2_HEADER
    } else {
        N1_HEADER
    };
    let got = 4 + read_up_to(&mut r, &mut head[4..size]).map_err(|e| read_err(name, e))?;
    let header = NiftiHeader::parse(&head[..got], name)?;
    let layout = validate(&header, name, options)?;
    let volume_index = match (layout.volumes, options.volume) {
        (1, None | Some(0)) => 0,
        (n, Some(v)) if v < n => v,
        (n, Some(v)) => {
            return Err(Error::input(
                "NIfTI volume index",
                format!("{name} has {n} volume(s); index {v} is out of range"),
            ));
        }
        (n, None) => {
            return Err(Error::FourDimensional {
                path: name.to_string(),
                volumes: n,
                dims: header.dim[1..=header.dim[0] as usize].to_vec(),
            });
        }
    };
    let size_t = layout.datatype.size() as u64;
    let volume_bytes = layout.voxels as u64 * size_t;
    let start = layout.data_offset + volume_index as u64 * volume_bytes;
    if let Some(len) = total_len {
        let needed = layout.data_offset + layout.volumes as u64 * volume_bytes;
        if len < needed {
            return Err(Error::Truncated {
                what: format!("NIfTI data of {name}"),
                expected: needed,
                found: len,
            });
        }
    }
    // Skip extensions and preceding volumes.
    let skip = start - size as u64;
    let skipped = std::io::copy(&mut (&mut r).take(skip), &mut std::io::sink())
        .map_err(|e| read_err(name, e))?;
    let truncated = |found: u64| Error::Truncated {
        what: format!("NIfTI data of {name}"),
        expected: start + volume_bytes,
        found,
    };
    if skipped < skip {
        return Err(truncated(size as u64 + skipped));
    }
    // Allocate up front only when the length is known to be there.
    let mut raw = if total_len.is_some() {
        Vec::with_capacity(volume_bytes as usize)
    } else {
        Vec::new()
    };
    (&mut r)
        .take(volume_bytes)
        .read_to_end(&mut raw)
        .map_err(|e| read_err(name, e))?;
    if (raw.len() as u64) < volume_bytes {
        return Err(truncated(start + raw.len() as u64));
    }
    let (m, spatial_source) = ras_affine(&header, name)?;
    let grid = grid_from_ras(&m, layout.dims, name)?;
    let big = header.big_endian;
    let data = decode(&raw, layout.datatype, big, grid)?;
    let scaling = (header.scl_slope.is_finite() && header.scl_slope != 0.0).then(|| {
        let inter = if header.scl_inter.is_finite() {
            header.scl_inter
        } else {
            0.0
        };
        (header.scl_slope, inter)
    });
    let non_finite_voxels = {
        let (a, b) = scaling.unwrap_or((1.0, 0.0));
        each_data!(&data, v => v.as_slice().iter().filter(|x| !(a * x.as_f64() + b).is_finite()).count())
    };
    Ok(NiftiImage {
        data,
        scaling,
        version: header.version,
        big_endian: big,
        spatial_source,
        non_finite_voxels,
        volumes_in_file: layout.volumes,
        volume_index,
        description: header.description,
    })
}

macro_rules! decode_as {
    ($raw:expr, $t:ty, $n:expr, $big:expr) => {{
        let raw: &[u8] = $raw;
        let out: Vec<$t> = raw
            .chunks_exact($n)
            .map(|c| <$t>::from_le_bytes(little_endian(c, $big)))
            .collect();
        out
    }};
}

fn decode(raw: &[u8], dt: NiftiDatatype, big: bool, grid: Grid) -> Result<NiftiData> {
    Ok(match dt {
        NiftiDatatype::U8 => NiftiData::U8(Volume::from_vec(grid, raw.to_vec())?),
        NiftiDatatype::I16 => NiftiData::I16(Volume::from_vec(grid, decode_as!(raw, i16, 2, big))?),
        NiftiDatatype::U16 => NiftiData::U16(Volume::from_vec(grid, decode_as!(raw, u16, 2, big))?),
        NiftiDatatype::I32 => NiftiData::I32(Volume::from_vec(grid, decode_as!(raw, i32, 4, big))?),
        NiftiDatatype::F32 => NiftiData::F32(Volume::from_vec(grid, decode_as!(raw, f32, 4, big))?),
        NiftiDatatype::F64 => NiftiData::F64(Volume::from_vec(grid, decode_as!(raw, f64, 8, big))?),
    })
}

/// Options for [`write_nifti`].
#[derive(Debug, Clone, PartialEq)]
pub struct NiftiWriteOptions {
    /// Text for the `descrip` field (at most 79 bytes are kept).
    pub description: String,
    /// `(scl_slope, scl_inter)` to store; `None` writes slope 0 (no
    /// scaling). The voxel values are written as given either way.
    pub scaling: Option<(f64, f64)>,
    /// gzip level 0-9 for `.gz` files (default 1: fast; 6 compresses a few
    /// per cent better at several times the cost).
    pub gzip_level: u32,
}

impl Default for NiftiWriteOptions {
    fn default() -> Self {
        Self {
            description: "dosepaint".into(),
            scaling: None,
            gzip_level: 1,
        }
    }
}

/// Writes a volume as a single-file NIfTI-1, gzip-compressed when the name
/// ends in `.gz`. The header carries the same placement twice, as sform
/// (`sform_code` 1, scanner anatomical) and qform (`qform_code` 1), in RAS:
/// `x_RAS = -x_LPS`, `y_RAS = -y_LPS`, `z` unchanged. Data are little-endian.
///
/// # Errors
/// [`Error::Io`] if the file cannot be written; [`Error::InvalidInput`] for a
/// non-finite scaling or a grid too large for NIfTI-1 (a dimension above
/// 32767).
pub fn write_nifti<T: NiftiElement>(
    path: impl AsRef<Path>,
    volume: &Volume<T>,
    options: &NiftiWriteOptions,
) -> Result<()> {
    let path = path.as_ref();
    let header = nifti1_header::<T>(volume.grid(), options)?;
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let gz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    let buffered = BufWriter::with_capacity(1 << 20, file);
    let result = if gz {
        let mut enc = GzEncoder::new(
            buffered,
            flate2::Compression::new(options.gzip_level.min(9)),
        );
        write_body(&mut enc, &header, volume)
            .and_then(|()| enc.finish())
            .and_then(|mut w| w.flush())
    } else {
        let mut w = buffered;
        write_body(&mut w, &header, volume).and_then(|()| w.flush())
    };
    result.map_err(|e| Error::io(path, e))
}

/// The bytes of an uncompressed single-file NIfTI-1 of `volume`.
///
/// # Errors
/// As [`write_nifti`], without the I/O.
pub fn nifti_bytes<T: NiftiElement>(
    volume: &Volume<T>,
    options: &NiftiWriteOptions,
) -> Result<Vec<u8>> {
    let header = nifti1_header::<T>(volume.grid(), options)?;
    let mut out = Vec::with_capacity(header.len() + volume.as_slice().len() * T::DATATYPE.size());
    write_body(&mut out, &header, volume).map_err(|e| Error::io("<memory>", e))?;
    Ok(out)
}

fn write_body<T: NiftiElement>(
    w: &mut impl Write,
    header: &[u8],
    volume: &Volume<T>,
) -> std::io::Result<()> {
    w.write_all(header)?;
    let mut buf = Vec::with_capacity(1 << 16);
    for chunk in volume.as_slice().chunks(1 << 14) {
        buf.clear();
        for &v in chunk {
            v.put_le(&mut buf);
        }
        w.write_all(&buf)?;
    }
    Ok(())
}

/// Header bytes (348 + 4-byte empty extension flag) of a NIfTI-1 file.
fn nifti1_header<T: NiftiElement>(grid: &Grid, options: &NiftiWriteOptions) -> Result<Vec<u8>> {
    let dims = grid.dims();
    if let Some(d) = dims.iter().find(|&&d| d > i16::MAX as usize) {
        return Err(Error::input(
            "NIfTI-1 dimensions",
            format!("{dims:?}: {d} exceeds 32767"),
        ));
    }
    let (slope, inter) = match options.scaling {
        Some((a, b)) if a.is_finite() && b.is_finite() && a != 0.0 => (a, b),
        Some((a, b)) => {
            return Err(Error::input(
                "NIfTI scaling",
                format!("slope {a}, intercept {b}: slope must be finite and non-zero"),
            ));
        }
        None => (0.0, 0.0),
    };
    let spacing = grid.spacing_mm();
    let dir = grid.direction();
    let origin = grid.origin_mm();
    // RAS affine columns: R_a = (-dir[a].x, -dir[a].y, dir[a].z).
    let ras = |a: usize| [-dir[a][0], -dir[a][1], dir[a][2]];
    let cols = [ras(0), ras(1), ras(2)];
    let offset = [-origin[0], -origin[1], origin[2]];
    // qform: rotation with qfac = -1 if the axes are left-handed.
    let det = cols[0][0] * (cols[1][1] * cols[2][2] - cols[1][2] * cols[2][1])
        - cols[1][0] * (cols[0][1] * cols[2][2] - cols[0][2] * cols[2][1])
        + cols[2][0] * (cols[0][1] * cols[1][2] - cols[0][2] * cols[1][1]);
    let qfac = if det < 0.0 { -1.0 } else { 1.0 };
    let mut r = [[0.0; 3]; 3];
    for row in 0..3 {
        for c in 0..3 {
            r[row][c] = cols[c][row] * if c == 2 { qfac } else { 1.0 };
        }
    }
    let q = rotation_to_quaternion(r);

    let mut h = vec![0u8; N1_HEADER + 4];
    let put_i16 =
        |h: &mut Vec<u8>, at: usize, v: i16| h[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put_i32 =
        |h: &mut Vec<u8>, at: usize, v: i32| h[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let put_f32 = |h: &mut Vec<u8>, at: usize, v: f64| {
        h[at..at + 4].copy_from_slice(&(v as f32).to_le_bytes());
    };
    put_i32(&mut h, 0, N1_HEADER as i32);
    h[38] = b'r'; // "regular", as written by most tools
    let dim = [
        3,
        dims[0] as i16,
        dims[1] as i16,
        dims[2] as i16,
        1,
        1,
        1,
        1,
    ];
    for (n, d) in dim.iter().enumerate() {
        put_i16(&mut h, 40 + 2 * n, *d);
    }
    put_i16(&mut h, 70, T::DATATYPE.code());
    put_i16(&mut h, 72, (8 * T::DATATYPE.size()) as i16);
    let pixdim = [qfac, spacing[0], spacing[1], spacing[2], 1.0, 1.0, 1.0, 1.0];
    for (n, p) in pixdim.iter().enumerate() {
        put_f32(&mut h, 76 + 4 * n, *p);
    }
    put_f32(&mut h, 108, (N1_HEADER + 4) as f64);
    put_f32(&mut h, 112, slope);
    put_f32(&mut h, 116, inter);
    h[123] = 2; // NIFTI_UNITS_MM
    let descrip = options.description.as_bytes();
    let n = descrip.len().min(79);
    h[148..148 + n].copy_from_slice(&descrip[..n]);
    put_i16(&mut h, 252, 1); // qform_code: NIFTI_XFORM_SCANNER_ANAT
    put_i16(&mut h, 254, 1); // sform_code
    for (n, v) in q.iter().chain(&offset).enumerate() {
        put_f32(&mut h, 256 + 4 * n, *v);
    }
    for row in 0..3 {
        for c in 0..3 {
            put_f32(&mut h, 280 + 16 * row + 4 * c, cols[c][row] * spacing[c]);
        }
        put_f32(&mut h, 280 + 16 * row + 12, offset[row]);
    }
    h[344..348].copy_from_slice(b"n+1\0");
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rot(ax: f64, ay: f64, az: f64) -> [[f64; 3]; 3] {
        let (sx, cx) = ax.sin_cos();
        let (sy, cy) = ay.sin_cos();
        let (sz, cz) = az.sin_cos();
        // Rz * Ry * Rx
        [
            [cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx],
            [sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx],
            [-sy, cy * sx, cy * cx],
        ]
    }

    proptest! {
        #[test]
        fn quaternion_round_trips(ax in -3.1f64..3.1, ay in -1.5f64..1.5, az in -3.1f64..3.1) {
            let r = rot(ax, ay, az);
            // Within about 0.05 degrees of a half turn, a^2 = (1 + trace) / 4 drops
            // under the standard's 1e-7 cut-off and the reader sets a = 0 (as
            // nifti1_io.c does): such qforms are exact only at the half turn,
            // which `half_turns_have_finite_quaternions` covers.
            prop_assume!((1.0 + r[0][0] + r[1][1] + r[2][2]) / 4.0 > 1e-6);
            let back = quaternion_to_rotation(rotation_to_quaternion(r));
            for i in 0..3 {
                for j in 0..3 {
                    prop_assert!((r[i][j] - back[i][j]).abs() < 1e-9, "{r:?} vs {back:?}");
                }
            }
        }
    }

    #[test]
    fn half_turns_have_finite_quaternions() {
        // 180-degree rotations take the non-trace branches.
        for r in [
            [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]],
            [[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]],
            [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]],
        ] {
            let back = quaternion_to_rotation(rotation_to_quaternion(r));
            for i in 0..3 {
                for j in 0..3 {
                    assert!((r[i][j] - back[i][j]).abs() < 1e-9);
                }
            }
        }
    }
}
