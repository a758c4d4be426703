//! Shared DICOM plumbing: opening files (with or without preamble and file
//! meta group), typed attribute access with errors that name the tag, pixel
//! decoding, UIDs, and writing.

use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use dicom_core::dictionary::DataDictionary;
use dicom_core::value::{C, DataSetSequence, DicomValueType, PrimitiveValue, Value};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_dictionary_std::{StandardDataDictionary, tags, uids};
use dicom_object::{
    FileDicomObject, FileMetaTableBuilder, InMemDicomObject, OpenFileOptions, file::ReadPreamble,
};

use crate::endian::little_endian;
use crate::{Error, Result};

/// Explicit VR Big Endian (retired, still met in old files).
pub(crate) const EXPLICIT_VR_BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";

/// A DICOM data set read from a file, with its transfer syntax.
pub(crate) struct DicomFile {
    obj: FileDicomObject<InMemDicomObject>,
    /// Name of the source, for messages.
    pub path: String,
}

/// Checks that `nx` columns and `ny` rows fit Columns (0028,0011) and Rows
/// (0028,0010), which are US (at most 65535).
///
/// # Errors
/// [`Error::InvalidInput`] naming `what` is written.
pub(crate) fn check_rows_columns(what: &str, nx: usize, ny: usize) -> Result<()> {
    if nx > 65535 || ny > 65535 {
        return Err(Error::input(
            what,
            format!("{nx} x {ny} pixels exceed 65535"),
        ));
    }
    Ok(())
}

/// Keyword and number of a tag, e.g. `PatientWeight (0010,1030)`.
pub(crate) fn tag_name(tag: Tag) -> String {
    match StandardDataDictionary.by_tag(tag) {
        Some(e) => format!("{} ({:04X},{:04X})", e.alias, tag.0, tag.1),
        None => format!("({:04X},{:04X})", tag.0, tag.1),
    }
}

/// Largest departure of a direction cosine's length from 1 that
/// [`image_axes`] accepts (files round cosines to a few decimals; a length
/// further from 1 is a corrupt value, not rounding).
const COSINE_LENGTH_TOLERANCE: f64 = 1e-2;

/// Largest `|row . column|` of the unit direction cosines that [`image_axes`]
/// accepts before making the column exactly orthogonal to the row.
const COSINE_ORTHOGONALITY_TOLERANCE: f64 = 1e-3;

/// The grid axes of an Image Orientation (Patient) (0020,0037) `iop` read
/// from `path`: the row cosine made unit, the column cosine made unit and
/// exactly orthogonal to it (Gram-Schmidt), and the slice normal
/// `row x column`.
///
/// # Errors
/// [`Error::InvalidTag`] naming the file and the tag when a cosine's length is
/// not 1 (within 1 %) or the two cosines are not orthogonal (within 1e-3).
pub(crate) fn image_axes(path: &str, iop: [f64; 6]) -> Result<[[f64; 3]; 3]> {
    let invalid = |reason: String| Error::InvalidTag {
        path: path.to_string(),
        tag: tag_name(tags::IMAGE_ORIENTATION_PATIENT),
        reason,
    };
    let row = [iop[0], iop[1], iop[2]];
    let col = [iop[3], iop[4], iop[5]];
    for (name, v) in [("row", row), ("column", col)] {
        let len = dot(v, v).sqrt();
        if len.is_nan() || (len - 1.0).abs() > COSINE_LENGTH_TOLERANCE {
            return Err(invalid(format!(
                "{iop:?}: the {name} cosine has length {len}, not 1"
            )));
        }
    }
    let row = unit(row);
    let col = unit(col);
    let d = dot(row, col);
    if d.abs() > COSINE_ORTHOGONALITY_TOLERANCE {
        return Err(invalid(format!(
            "{iop:?}: row and column cosines are not orthogonal (dot product {d})"
        )));
    }
    let col = unit([0, 1, 2].map(|c| col[c] - d * row[c]));
    Ok([row, col, cross(row, col)])
}

/// Cross product.
pub(crate) fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// Dot product.
pub(crate) fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// `v` scaled to length 1.
fn unit(v: [f64; 3]) -> [f64; 3] {
    let n = dot(v, v).sqrt();
    v.map(|x| x / n)
}

/// Name of a transfer syntax for messages.
pub(crate) fn transfer_syntax_name(uid: &str) -> &'static str {
    match uid {
        uids::IMPLICIT_VR_LITTLE_ENDIAN => "Implicit VR Little Endian",
        uids::EXPLICIT_VR_LITTLE_ENDIAN => "Explicit VR Little Endian",
        EXPLICIT_VR_BIG_ENDIAN => "Explicit VR Big Endian",
        uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN => "Deflated Explicit VR Little Endian",
        uids::RLE_LOSSLESS => "RLE Lossless",
        "1.2.840.10008.1.2.4.50" => "JPEG Baseline (Process 1)",
        "1.2.840.10008.1.2.4.51" => "JPEG Extended (Process 2 & 4)",
        "1.2.840.10008.1.2.4.57" => "JPEG Lossless, Non-Hierarchical (Process 14)",
        "1.2.840.10008.1.2.4.70" => "JPEG Lossless, First-Order Prediction",
        "1.2.840.10008.1.2.4.80" => "JPEG-LS Lossless",
        "1.2.840.10008.1.2.4.81" => "JPEG-LS Near-Lossless",
        "1.2.840.10008.1.2.4.90" => "JPEG 2000 Lossless",
        "1.2.840.10008.1.2.4.91" => "JPEG 2000",
        "1.2.840.10008.1.2.4.201" => "HTJ2K Lossless",
        "1.2.840.10008.1.2.4.203" => "HTJ2K",
        "1.2.840.10008.1.2.1.98" => "Encapsulated Uncompressed Explicit VR Little Endian",
        _ => "unknown transfer syntax",
    }
}

/// How a file begins.
enum Framing {
    /// Preamble + "DICM" or just "DICM": a standard file.
    Standard,
    /// A bare data set in the given transfer syntax.
    Bare(&'static str),
}

fn framing(bytes: &[u8], name: &str) -> Result<Framing> {
    if (bytes.len() >= 132 && &bytes[128..132] == b"DICM") || bytes.starts_with(b"DICM") {
        return Ok(Framing::Standard);
    }
    let not_dicom = |why: &str| Error::DicomRead {
        path: name.to_string(),
        reason: format!("no DICOM preamble or file meta group, and {why}"),
    };
    if bytes.len() < 8 {
        return Err(not_dicom("too short for a data set"));
    }
    let le = u16::from_le_bytes([bytes[0], bytes[1]]);
    let be = u16::from_be_bytes([bytes[0], bytes[1]]);
    // A bare data set starts with group 0008 (every IOD has SOP Class UID).
    let vr_like = bytes[4].is_ascii_uppercase() && bytes[5].is_ascii_uppercase();
    let known_vr = vr_like && VR::from_binary([bytes[4], bytes[5]]).is_some();
    if le == 0x0008 {
        Ok(Framing::Bare(if known_vr {
            uids::EXPLICIT_VR_LITTLE_ENDIAN
        } else {
            uids::IMPLICIT_VR_LITTLE_ENDIAN
        }))
    } else if be == 0x0008 && known_vr {
        Ok(Framing::Bare(EXPLICIT_VR_BIG_ENDIAN))
    } else {
        Err(not_dicom("the first element is not in group 0008"))
    }
}

impl DicomFile {
    /// Opens a file. With `header_only`, reading stops before the pixel data.
    pub fn open(path: &Path, header_only: bool) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, &path.display().to_string(), header_only)
    }

    /// Parses a file held in memory.
    pub fn from_bytes(bytes: &[u8], name: &str, header_only: bool) -> Result<Self> {
        let read_err = |e: &dyn std::fmt::Display| Error::DicomRead {
            path: name.to_string(),
            reason: error_chain(e),
        };
        check_lengths(bytes, name)?;
        let mut options = OpenFileOptions::new();
        if header_only {
            options = options.read_until(tags::PIXEL_DATA);
        }
        let obj = match framing(bytes, name)? {
            Framing::Standard => options
                .read_preamble(ReadPreamble::Auto)
                .from_reader(bytes)
                .map_err(|e| read_err(&e))?,
            Framing::Bare(ts) => {
                // Put a minimal file meta group in front, so that the standard
                // reader (and the pixel decoder) see a normal file.
                let meta = FileMetaTableBuilder::new()
                    .transfer_syntax(ts)
                    .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
                    .media_storage_sop_instance_uid("2.25.0")
                    .build()
                    .map_err(|e| read_err(&e))?;
                let mut framed = b"DICM".to_vec();
                meta.write(&mut framed).map_err(|e| read_err(&e))?;
                framed.extend_from_slice(bytes);
                let mut obj = options
                    .read_preamble(ReadPreamble::Never)
                    .from_reader(&framed[..])
                    .map_err(|e| read_err(&e))?;
                let ds: &InMemDicomObject = &obj;
                let class = ds
                    .get(tags::SOP_CLASS_UID)
                    .and_then(|e| e.to_str().ok())
                    .map(|s| s.trim_end_matches(['\0', ' ']).to_string());
                let inst = ds
                    .get(tags::SOP_INSTANCE_UID)
                    .and_then(|e| e.to_str().ok())
                    .map(|s| s.trim_end_matches(['\0', ' ']).to_string());
                let meta = obj.meta_mut();
                if let Some(c) = class {
                    meta.media_storage_sop_class_uid = c;
                }
                if let Some(i) = inst {
                    meta.media_storage_sop_instance_uid = i;
                }
                obj
            }
        };
        Ok(Self {
            obj,
            path: name.to_string(),
        })
    }

    /// The transfer syntax UID.
    pub fn transfer_syntax(&self) -> &str {
        self.obj.meta().transfer_syntax()
    }

    /// The whole file object (for the pixel decoder).
    pub fn file_object(&self) -> &FileDicomObject<InMemDicomObject> {
        &self.obj
    }

    /// The root data set.
    pub fn root(&self) -> Item<'_> {
        Item {
            obj: &self.obj,
            path: &self.path,
        }
    }

    /// Checks that Modality (0008,0060) is `modality`; `what` names the
    /// object the reader expects (e.g. "an RT Plan").
    ///
    /// # Errors
    /// [`Error::WrongModality`] naming the file, the expected object and the
    /// modality found.
    pub fn require_modality(&self, modality: &str, what: &str) -> Result<()> {
        let found = self.root().str(tags::MODALITY).unwrap_or_default();
        if found == modality {
            return Ok(());
        }
        Err(Error::WrongModality {
            path: self.path.clone(),
            expected: format!("{what} (Modality {modality})"),
            found: format!("Modality \"{found}\""),
        })
    }
}

/// Walks the element structure of a file (not its values) and checks that
/// no element, item or sequence claims more bytes than remain, before the
/// parser allocates for it: a corrupt length must be an error, not a
/// multi-gigabyte allocation. Deflated data sets are checked up to the
/// file meta group only (their lengths are inside the compressed stream).
fn check_lengths(bytes: &[u8], name: &str) -> Result<()> {
    let (start, mut enc) = if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        (
            132,
            Enc {
                explicit: true,
                big: false,
            },
        )
    } else if bytes.starts_with(b"DICM") {
        (
            4,
            Enc {
                explicit: true,
                big: false,
            },
        )
    } else {
        match framing(bytes, name)? {
            Framing::Bare(ts) => (0, Enc::of(ts)),
            Framing::Standard => (
                0,
                Enc {
                    explicit: true,
                    big: false,
                },
            ),
        }
    };
    let mut w = Walker { b: bytes, ts: None };
    let mut pos = start;
    // File meta group (explicit VR little endian), then the data set in
    // its own encoding.
    if start > 0 {
        let meta = Enc {
            explicit: true,
            big: false,
        };
        while pos + 4 <= bytes.len() && u16::from_le_bytes([bytes[pos], bytes[pos + 1]]) == 2 {
            pos = w
                .element(pos, bytes.len(), meta, 0)
                .map_err(|r| bad_structure(name, &r))?;
        }
        match w.ts.as_deref() {
            Some(uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN) => return Ok(()),
            Some(ts) => enc = Enc::of(ts),
            None => {}
        }
    }
    while pos < bytes.len() {
        pos = w
            .element(pos, bytes.len(), enc, 0)
            .map_err(|r| bad_structure(name, &r))?;
    }
    Ok(())
}

fn bad_structure(name: &str, reason: &str) -> Error {
    Error::DicomRead {
        path: name.to_string(),
        reason: format!("corrupt element structure: {reason}"),
    }
}

#[derive(Clone, Copy)]
struct Enc {
    explicit: bool,
    big: bool,
}

impl Enc {
    fn of(ts: &str) -> Self {
        match ts {
            uids::IMPLICIT_VR_LITTLE_ENDIAN => Self {
                explicit: false,
                big: false,
            },
            EXPLICIT_VR_BIG_ENDIAN => Self {
                explicit: true,
                big: true,
            },
            _ => Self {
                explicit: true,
                big: false,
            },
        }
    }
}

struct Walker<'a> {
    b: &'a [u8],
    ts: Option<String>,
}

const MAX_DEPTH: usize = 32;
const UNDEFINED: u32 = 0xFFFF_FFFF;

impl Walker<'_> {
    /// The `N` bytes at `at`, in little-endian order.
    fn le<const N: usize>(&self, at: usize, big: bool) -> std::result::Result<[u8; N], String> {
        let s = self.b.get(at..at + N).ok_or("truncated element header")?;
        Ok(little_endian(s, big))
    }

    fn u16(&self, at: usize, big: bool) -> std::result::Result<u16, String> {
        self.le(at, big).map(u16::from_le_bytes)
    }

    fn u32(&self, at: usize, big: bool) -> std::result::Result<u32, String> {
        self.le(at, big).map(u32::from_le_bytes)
    }

    /// Checks the element at `pos` (ending by `end`); returns where the next
    /// element starts.
    fn element(
        &mut self,
        pos: usize,
        end: usize,
        enc: Enc,
        depth: usize,
    ) -> std::result::Result<usize, String> {
        if depth > MAX_DEPTH {
            return Err(format!("sequences nested deeper than {MAX_DEPTH}"));
        }
        let group = self.u16(pos, enc.big)?;
        let elem = self.u16(pos + 2, enc.big)?;
        let tag = Tag(group, elem);
        let (len, header, is_sq) = if group == 0xFFFE {
            (self.u32(pos + 4, enc.big)?, 8, false)
        } else if enc.explicit {
            let vr = self
                .b
                .get(pos + 4..pos + 6)
                .ok_or("truncated element header")?;
            let vr = VR::from_binary([vr[0], vr[1]]);
            let long = matches!(
                vr,
                Some(
                    VR::OB
                        | VR::OD
                        | VR::OF
                        | VR::OL
                        | VR::OV
                        | VR::OW
                        | VR::SQ
                        | VR::SV
                        | VR::UC
                        | VR::UN
                        | VR::UR
                        | VR::UT
                        | VR::UV
                )
            );
            if long {
                (self.u32(pos + 8, enc.big)?, 12, vr == Some(VR::SQ))
            } else {
                (u32::from(self.u16(pos + 6, enc.big)?), 8, false)
            }
        } else {
            let sq = StandardDataDictionary
                .by_tag(tag)
                .is_some_and(|e| e.vr.relaxed() == VR::SQ);
            (self.u32(pos + 4, enc.big)?, 8, sq)
        };
        let body = pos + header;
        if body > end {
            return Err(format!("element {tag} header runs past the end"));
        }
        if len == UNDEFINED {
            // Sequence (or encapsulated pixel data): items until the
            // sequence delimiter.
            let mut p = body;
            loop {
                if p + 8 > end {
                    return Err(format!("undefined-length element {tag} has no delimiter"));
                }
                let (g, e) = (self.u16(p, enc.big)?, self.u16(p + 2, enc.big)?);
                if g == 0xFFFE && e == 0xE0DD {
                    return Ok(p + 8);
                }
                if g != 0xFFFE || e != 0xE000 {
                    return Err(format!(
                        "element {tag} holds ({g:04X},{e:04X}) where an item is expected"
                    ));
                }
                p = self.item(p, end, enc, depth + 1, tag != tags::PIXEL_DATA)?;
            }
        }
        let next = body
            .checked_add(len as usize)
            .filter(|&n| n <= end)
            .ok_or_else(|| {
                format!(
                    "element {tag} claims {len} bytes but only {} remain",
                    end - body
                )
            })?;
        if tag == tags::TRANSFER_SYNTAX_UID {
            let s = String::from_utf8_lossy(&self.b[body..next]);
            self.ts = Some(s.trim_end_matches(['\0', ' ']).to_string());
        }
        if is_sq {
            let mut p = body;
            while p < next {
                p = self.item(p, next, enc, depth + 1, true)?;
            }
        }
        Ok(next)
    }

    /// Checks an item (FFFE,E000) at `pos`; returns the position after it.
    fn item(
        &mut self,
        pos: usize,
        end: usize,
        enc: Enc,
        depth: usize,
        walk: bool,
    ) -> std::result::Result<usize, String> {
        if depth > MAX_DEPTH {
            return Err(format!("sequences nested deeper than {MAX_DEPTH}"));
        }
        if pos + 8 > end {
            return Err("truncated item header".into());
        }
        let (g, e) = (self.u16(pos, enc.big)?, self.u16(pos + 2, enc.big)?);
        if g != 0xFFFE || e != 0xE000 {
            return Err(format!("({g:04X},{e:04X}) where an item is expected"));
        }
        let len = self.u32(pos + 4, enc.big)?;
        let body = pos + 8;
        if len == UNDEFINED {
            let mut p = body;
            loop {
                if p + 8 > end {
                    return Err("undefined-length item has no delimiter".into());
                }
                let (g, e) = (self.u16(p, enc.big)?, self.u16(p + 2, enc.big)?);
                if g == 0xFFFE && e == 0xE00D {
                    return Ok(p + 8);
                }
                p = self.element(p, end, enc, depth + 1)?;
            }
        }
        let next = body
            .checked_add(len as usize)
            .filter(|&n| n <= end)
            .ok_or_else(|| format!("item claims {len} bytes but only {} remain", end - body))?;
        // Items of encapsulated pixel data hold fragments, not elements:
        // their content is only bounded, not walked.
        if walk {
            let mut p = body;
            while p < next {
                p = self.element(p, next, enc, depth + 1)?;
            }
        }
        Ok(next)
    }
}

/// The message of an error and all its sources.
pub(crate) fn error_chain(e: &dyn std::fmt::Display) -> String {
    e.to_string()
}

/// A data set (root or sequence item) with the file name for messages.
#[derive(Clone, Copy)]
pub(crate) struct Item<'a> {
    pub obj: &'a InMemDicomObject,
    pub path: &'a str,
}

impl<'a> Item<'a> {
    fn missing(&self, tag: Tag, context: &str) -> Error {
        Error::MissingTag {
            path: self.path.to_string(),
            tag: tag_name(tag),
            context: context.to_string(),
        }
    }

    pub fn invalid(&self, tag: Tag, reason: impl Into<String>) -> Error {
        Error::InvalidTag {
            path: self.path.to_string(),
            tag: tag_name(tag),
            reason: reason.into(),
        }
    }

    /// Whether the element exists (even if empty).
    pub fn has(&self, tag: Tag) -> bool {
        self.obj.get(tag).is_some()
    }

    /// A string value, trimmed; `None` when absent or empty.
    pub fn str(&self, tag: Tag) -> Option<String> {
        let e = self.obj.get(tag)?;
        // Text stored with VR UN or OB (seen in converted files) is bytes.
        let s = match e.value().primitive() {
            Some(PrimitiveValue::U8(b)) => Cow::Owned(String::from_utf8_lossy(b).into_owned()),
            _ => e.to_str().ok()?,
        };
        let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        (!s.is_empty()).then(|| s.to_string())
    }

    /// A required string value.
    pub fn str_req(&self, tag: Tag, context: &str) -> Result<String> {
        self.str(tag).ok_or_else(|| self.missing(tag, context))
    }

    /// All values of a multi-valued numeric (DS, IS, FD, US...) element;
    /// `None` when absent or empty.
    pub fn f64s(&self, tag: Tag) -> Result<Option<Vec<f64>>> {
        let Some(e) = self.obj.get(tag) else {
            return Ok(None);
        };
        if e.vr() == VR::UN
            && let Some(PrimitiveValue::U8(b)) = e.value().primitive()
        {
            return self.un_numbers(tag, b);
        }
        let empty = match e.value().primitive() {
            None => true,
            Some(PrimitiveValue::Strs(v)) => {
                v.iter().all(|s| s.trim_matches(['\0', ' ']).is_empty())
            }
            Some(PrimitiveValue::Str(s)) => s.trim_matches(['\0', ' ']).is_empty(),
            Some(p) => p.multiplicity() == 0,
        };
        if empty {
            return Ok(None);
        }
        let v = e
            .to_multi_float64()
            .map_err(|err| self.invalid(tag, format!("not a number: {err}")))?;
        if let Some(bad) = v.iter().find(|x| !x.is_finite()) {
            return Err(self.invalid(tag, format!("value {bad} is not finite")));
        }
        Ok((!v.is_empty()).then_some(v))
    }

    /// Numbers of an element stored with VR UN (as some converters write
    /// every element): decoded with the dictionary's VR, little endian.
    fn un_numbers(&self, tag: Tag, b: &[u8]) -> Result<Option<Vec<f64>>> {
        let vr = StandardDataDictionary
            .by_tag(tag)
            .map(|e| e.vr.relaxed())
            .ok_or_else(|| self.invalid(tag, "VR UN and not in the dictionary"))?;
        macro_rules! le {
            ($t:ty, $n:expr) => {
                b.chunks_exact($n)
                    .map(|c| f64::from(<$t>::from_le_bytes(c.try_into().expect("chunk"))))
                    .collect::<Vec<f64>>()
            };
        }
        let v = match vr {
            VR::DS | VR::IS => {
                let text = String::from_utf8_lossy(b);
                let text = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
                if text.is_empty() {
                    return Ok(None);
                }
                text.split('\\')
                    .map(|p| {
                        p.trim()
                            .parse::<f64>()
                            .map_err(|_| self.invalid(tag, format!("\"{p}\" is not a number")))
                    })
                    .collect::<Result<Vec<f64>>>()?
            }
            VR::US => le!(u16, 2),
            VR::SS => le!(i16, 2),
            VR::UL => le!(u32, 4),
            VR::SL => le!(i32, 4),
            VR::FL => le!(f32, 4),
            VR::FD => le!(f64, 8),
            other => {
                return Err(self.invalid(tag, format!("VR UN holding {other:?}, not a number")));
            }
        };
        if let Some(bad) = v.iter().find(|x| !x.is_finite()) {
            return Err(self.invalid(tag, format!("value {bad} is not finite")));
        }
        Ok((!v.is_empty()).then_some(v))
    }

    /// A single numeric value; `None` when absent or empty.
    pub fn f64(&self, tag: Tag) -> Result<Option<f64>> {
        Ok(self.f64s(tag)?.map(|v| v[0]))
    }

    /// A required single numeric value.
    pub fn f64_req(&self, tag: Tag, context: &str) -> Result<f64> {
        self.f64(tag)?.ok_or_else(|| self.missing(tag, context))
    }

    /// A required multi-valued numeric element with exactly `n` values
    /// (`n == 0`: any positive count).
    pub fn f64s_req(&self, tag: Tag, n: usize, context: &str) -> Result<Vec<f64>> {
        let v = self.f64s(tag)?.ok_or_else(|| self.missing(tag, context))?;
        if n > 0 && v.len() != n {
            return Err(self.invalid(tag, format!("{} values, expected {n}", v.len())));
        }
        Ok(v)
    }

    /// A required positive (> 0) number; `unit` (e.g. `" Bq"`) follows the
    /// value in the message when it is not positive.
    pub fn positive_f64_req(&self, tag: Tag, context: &str, unit: &str) -> Result<f64> {
        let v = self.f64_req(tag, context)?;
        if v <= 0.0 {
            return Err(self.invalid(tag, format!("{v}{unit} must be positive")));
        }
        Ok(v)
    }

    /// A required element of `n` positive (> 0) numbers, as
    /// [`Self::f64s_req`]; `unit` follows the values in the message when one
    /// is not positive.
    pub fn positive_f64s_req(
        &self,
        tag: Tag,
        n: usize,
        context: &str,
        unit: &str,
    ) -> Result<Vec<f64>> {
        let v = self.f64s_req(tag, n, context)?;
        if v.iter().any(|&x| x <= 0.0) {
            return Err(self.invalid(tag, format!("{v:?}{unit} must be positive")));
        }
        Ok(v)
    }

    /// A non-negative integer value; `None` when absent or empty.
    pub fn uint(&self, tag: Tag) -> Result<Option<u64>> {
        match self.f64(tag)? {
            None => Ok(None),
            Some(v) if v >= 0.0 && v.fract() == 0.0 && v < 9.0e15 => Ok(Some(v as u64)),
            Some(v) => Err(self.invalid(tag, format!("{v} is not a non-negative integer"))),
        }
    }

    /// A required non-negative integer.
    pub fn uint_req(&self, tag: Tag, context: &str) -> Result<u64> {
        self.uint(tag)?.ok_or_else(|| self.missing(tag, context))
    }

    /// The items of a sequence (empty when absent).
    pub fn seq(&self, tag: Tag) -> Vec<Item<'a>> {
        let path = self.path;
        self.obj
            .get(tag)
            .and_then(|e| e.items())
            .map(|items| items.iter().map(|obj| Item { obj, path }).collect())
            .unwrap_or_default()
    }

    /// The items of a required, non-empty sequence.
    pub fn seq_req(&self, tag: Tag, context: &str) -> Result<Vec<Item<'a>>> {
        let items = self.seq(tag);
        if items.is_empty() {
            Err(self.missing(tag, context))
        } else {
            Ok(items)
        }
    }
}

/// A fresh UID under the `2.25` root (ITU-T X.667: a 128-bit number in
/// decimal), from the clock, the process and a counter mixed by SplitMix64.
pub fn new_uid() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = u64::from(std::process::id());
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let hi = mix(nanos ^ pid.rotate_left(32));
    let lo = mix(count ^ hi ^ nanos.rotate_left(17));
    // Keep the value below 2^127 so it never has a leading zero issue and
    // stays well within the 64-character limit (39 digits + "2.25.").
    let v = ((u128::from(hi) << 64) | u128::from(lo)) >> 1;
    format!("2.25.{}", v.max(1))
}

/// A DS (decimal string) of at most 16 characters representing `v` as
/// precisely as fits.
pub(crate) fn ds(v: f64) -> String {
    let v = if v == 0.0 { 0.0 } else { v }; // no "-0"
    let plain = format!("{v}");
    if plain.len() <= 16 {
        return plain;
    }
    for prec in (0..=15).rev() {
        let s = format!("{v:.prec$}");
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        };
        if s.len() <= 16 {
            return s;
        }
    }
    for prec in (0..=10).rev() {
        let s = format!("{v:.prec$e}");
        if s.len() <= 16 {
            return s;
        }
    }
    // Unreachable for finite values; callers validate finiteness.
    format!("{v:.0e}")
}

/// Builder helpers for data sets.
pub(crate) trait Put {
    fn put_strs(&mut self, tag: Tag, vr: VR, values: Vec<String>);
    fn put_ds(&mut self, tag: Tag, values: &[f64]);
    fn put_is(&mut self, tag: Tag, value: i64);
    fn put_us(&mut self, tag: Tag, value: u16);
    fn put_seq(&mut self, tag: Tag, items: Vec<InMemDicomObject>);
}

impl Put for InMemDicomObject {
    fn put_strs(&mut self, tag: Tag, vr: VR, values: Vec<String>) {
        self.put(DataElement::new(
            tag,
            vr,
            PrimitiveValue::Strs(C::from_vec(values)),
        ));
    }
    fn put_ds(&mut self, tag: Tag, values: &[f64]) {
        self.put_strs(tag, VR::DS, values.iter().map(|&v| ds(v)).collect());
    }
    fn put_is(&mut self, tag: Tag, value: i64) {
        self.put_str(tag, VR::IS, value.to_string());
    }
    fn put_us(&mut self, tag: Tag, value: u16) {
        self.put(DataElement::new(tag, VR::US, PrimitiveValue::from(value)));
    }
    fn put_seq(&mut self, tag: Tag, items: Vec<InMemDicomObject>) {
        self.put(DataElement::new(
            tag,
            VR::SQ,
            Value::from(DataSetSequence::new(items, Length::UNDEFINED)),
        ));
    }
}

/// Transfer syntax of a written file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum WriteSyntax {
    /// Explicit VR Little Endian (1.2.840.10008.1.2.1), the default.
    #[default]
    ExplicitLittle,
    /// Implicit VR Little Endian (1.2.840.10008.1.2).
    ImplicitLittle,
    /// Explicit VR Big Endian (1.2.840.10008.1.2.2, retired but still met).
    ExplicitBig,
    /// Deflated Explicit VR Little Endian (1.2.840.10008.1.2.1.99).
    Deflated,
    /// A bare Implicit VR Little Endian data set: no preamble and no file
    /// meta group (as some old systems write; for tests of such input).
    BareImplicitLittle,
}

impl WriteSyntax {
    /// The transfer syntax UID.
    pub fn uid(self) -> &'static str {
        match self {
            Self::ExplicitLittle => uids::EXPLICIT_VR_LITTLE_ENDIAN,
            Self::ImplicitLittle | Self::BareImplicitLittle => uids::IMPLICIT_VR_LITTLE_ENDIAN,
            Self::ExplicitBig => EXPLICIT_VR_BIG_ENDIAN,
            Self::Deflated => uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
        }
    }
}

/// Writes a data set (which must hold SOP Class and Instance UIDs) to `path`.
pub(crate) fn write_dataset(obj: InMemDicomObject, path: &Path, syntax: WriteSyntax) -> Result<()> {
    let name = path.display().to_string();
    let err = |e: &dyn std::fmt::Display| Error::DicomWrite {
        path: name.clone(),
        reason: e.to_string(),
    };
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(syntax.uid())
                .implementation_class_uid("2.25.170982934719836402830418651183498163779")
                .implementation_version_name("DOSEPAINT_010"),
        )
        .map_err(|e| err(&e))?;
    if syntax == WriteSyntax::BareImplicitLittle {
        let f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
        let mut w = std::io::BufWriter::new(f);
        file.write_dataset(&mut w).map_err(|e| err(&e))?;
        std::io::Write::flush(&mut w).map_err(|e| Error::io(path, e))?;
        Ok(())
    } else {
        file.write_to_file(path).map_err(|e| err(&e))
    }
}

/// Today's date (DA) and time (TM), UTC.
pub(crate) fn now_da_tm() -> (String, String) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86400) as i64;
    let (y, m, d) = civil_from_days(days);
    let s = secs % 86400;
    (
        format!("{y:04}{m:02}{d:02}"),
        format!("{:02}{:02}{:02}", s / 3600, (s / 60) % 60, s % 60),
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Information about the patient, copied into written objects.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct PatientInfo {
    /// Patient's Name (0010,0010), DICOM PN form (`Family^Given`).
    pub name: String,
    /// Patient ID (0010,0020).
    pub id: String,
}

impl PatientInfo {
    pub(crate) fn read(item: &Item<'_>) -> Self {
        Self {
            name: item.str(tags::PATIENT_NAME).unwrap_or_default(),
            id: item.str(tags::PATIENT_ID).unwrap_or_default(),
        }
    }

    pub(crate) fn put(&self, obj: &mut InMemDicomObject) {
        obj.put_str(tags::PATIENT_NAME, VR::PN, self.name.clone());
        obj.put_str(tags::PATIENT_ID, VR::LO, self.id.clone());
        obj.put_str(tags::PATIENT_BIRTH_DATE, VR::DA, "");
        obj.put_str(tags::PATIENT_SEX, VR::CS, "");
    }
}

/// Common module attributes of every written object: SOP common, patient,
/// general study, general series, frame of reference, general equipment.
pub(crate) struct Common<'a> {
    pub sop_class: &'a str,
    pub sop_instance: &'a str,
    pub modality: &'a str,
    pub patient: &'a PatientInfo,
    pub study_uid: &'a str,
    pub series_uid: &'a str,
    pub series_number: i64,
    pub series_description: &'a str,
    pub frame_of_reference_uid: Option<&'a str>,
    pub instance_number: i64,
}

impl Common<'_> {
    pub fn put(&self, obj: &mut InMemDicomObject) {
        let (date, time) = now_da_tm();
        obj.put_str(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
        obj.put_str(tags::INSTANCE_CREATION_DATE, VR::DA, date.clone());
        obj.put_str(tags::INSTANCE_CREATION_TIME, VR::TM, time.clone());
        obj.put_str(tags::SOP_CLASS_UID, VR::UI, self.sop_class);
        obj.put_str(tags::SOP_INSTANCE_UID, VR::UI, self.sop_instance);
        obj.put_str(tags::STUDY_DATE, VR::DA, date.clone());
        obj.put_str(tags::STUDY_TIME, VR::TM, time.clone());
        obj.put_str(tags::SERIES_DATE, VR::DA, date);
        obj.put_str(tags::SERIES_TIME, VR::TM, time);
        obj.put_str(tags::ACCESSION_NUMBER, VR::SH, "");
        obj.put_str(tags::MODALITY, VR::CS, self.modality);
        obj.put_str(tags::MANUFACTURER, VR::LO, "dosepaint");
        obj.put_str(tags::REFERRING_PHYSICIAN_NAME, VR::PN, "");
        obj.put_str(tags::SERIES_DESCRIPTION, VR::LO, self.series_description);
        obj.put_str(tags::MANUFACTURER_MODEL_NAME, VR::LO, "dosepaint-io");
        obj.put_str(tags::SOFTWARE_VERSIONS, VR::LO, env!("CARGO_PKG_VERSION"));
        self.patient.put(obj);
        obj.put_str(tags::STUDY_INSTANCE_UID, VR::UI, self.study_uid);
        obj.put_str(tags::SERIES_INSTANCE_UID, VR::UI, self.series_uid);
        obj.put_str(tags::STUDY_ID, VR::SH, "1");
        obj.put_is(tags::SERIES_NUMBER, self.series_number);
        obj.put_is(tags::INSTANCE_NUMBER, self.instance_number);
        if let Some(f) = self.frame_of_reference_uid {
            obj.put_str(tags::FRAME_OF_REFERENCE_UID, VR::UI, f);
            obj.put_str(tags::POSITION_REFERENCE_INDICATOR, VR::LO, "");
        }
    }
}

/// Stored pixel values of an image, all frames, as `f64` (before any
/// rescale), with the number of frames.
pub(crate) struct Pixels {
    pub rows: usize,
    pub cols: usize,
    pub frames: usize,
    pub values: Vec<f64>,
}

/// Decodes the stored pixel values of a single-sample (grey) image: native
/// (any byte order) or RLE; other encapsulated syntaxes are refused with
/// [`Error::UnsupportedTransferSyntax`].
pub(crate) fn decode_pixels(file: &DicomFile) -> Result<Pixels> {
    let root = file.root();
    let ctx = "image pixel module";
    let rows = root.uint_req(tags::ROWS, ctx)? as usize;
    let cols = root.uint_req(tags::COLUMNS, ctx)? as usize;
    let frames = root.uint(tags::NUMBER_OF_FRAMES)?.unwrap_or(1) as usize;
    let samples = root.uint(tags::SAMPLES_PER_PIXEL)?.unwrap_or(1);
    if samples != 1 {
        return Err(root.invalid(
            tags::SAMPLES_PER_PIXEL,
            format!("{samples} samples per pixel: only grey-scale images are read"),
        ));
    }
    let bits_allocated = root.uint_req(tags::BITS_ALLOCATED, ctx)?;
    if !matches!(bits_allocated, 8 | 16 | 32) {
        return Err(root.invalid(
            tags::BITS_ALLOCATED,
            format!("{bits_allocated}: only 8, 16 and 32 are read"),
        ));
    }
    let bits_stored = root.uint(tags::BITS_STORED)?.unwrap_or(bits_allocated);
    if bits_stored == 0 || bits_stored > bits_allocated {
        return Err(root.invalid(
            tags::BITS_STORED,
            format!("{bits_stored} with {bits_allocated} bits allocated"),
        ));
    }
    let high_bit = root.uint(tags::HIGH_BIT)?.unwrap_or(bits_stored - 1);
    if high_bit + 1 < bits_stored || high_bit >= bits_allocated {
        return Err(root.invalid(
            tags::HIGH_BIT,
            format!("{high_bit} with {bits_stored} bits stored, {bits_allocated} allocated"),
        ));
    }
    let signed = root.uint(tags::PIXEL_REPRESENTATION)?.unwrap_or(0) == 1;
    let n = rows
        .checked_mul(cols)
        .and_then(|p| p.checked_mul(frames))
        .filter(|&n| n > 0 && n <= dosepaint_core::MAX_VOXELS)
        .ok_or_else(|| {
            root.invalid(
                tags::ROWS,
                format!("{rows} rows x {cols} columns x {frames} frames is empty or too large"),
            )
        })?;
    let Some(elem) = file.file_object().get(tags::PIXEL_DATA) else {
        return Err(Error::MissingTag {
            path: file.path.clone(),
            tag: tag_name(tags::PIXEL_DATA),
            context: "image pixel module".into(),
        });
    };
    let ts = file.transfer_syntax().to_string();
    let big = ts == EXPLICIT_VR_BIG_ENDIAN;
    let bytes_per = (bits_allocated / 8) as usize;
    // Raw words, widened to u32, in pixel order.
    let words: Vec<u32> = match elem.value() {
        Value::PixelSequence(seq) => {
            if ts != uids::RLE_LOSSLESS {
                return Err(Error::UnsupportedTransferSyntax {
                    path: file.path.clone(),
                    name: transfer_syntax_name(&ts).to_string(),
                    uid: ts,
                });
            }
            let frags = seq.fragments();
            if frags.len() != frames {
                return Err(Error::InvalidTag {
                    path: file.path.clone(),
                    tag: tag_name(tags::PIXEL_DATA),
                    reason: format!(
                        "{} RLE fragments for {frames} frames (RLE needs one fragment per frame)",
                        frags.len()
                    ),
                });
            }
            let mut words = Vec::with_capacity(n);
            for (f, frag) in frags.iter().enumerate() {
                rle_frame(frag, rows * cols, bytes_per, &mut words).map_err(|reason| {
                    Error::InvalidTag {
                        path: file.path.clone(),
                        tag: tag_name(tags::PIXEL_DATA),
                        reason: format!("RLE frame {f}: {reason}"),
                    }
                })?;
            }
            words
        }
        Value::Primitive(p) => match p {
            PrimitiveValue::U8(b) => words_from_bytes(b, bytes_per, big, n, &file.path)?,
            PrimitiveValue::U16(v) if bytes_per == 2 => {
                take_words(v.iter().map(|&x| u32::from(x)), v.len(), n, &file.path)?
            }
            PrimitiveValue::I16(v) if bytes_per == 2 => take_words(
                v.iter().map(|&x| u32::from(x as u16)),
                v.len(),
                n,
                &file.path,
            )?,
            PrimitiveValue::U32(v) if bytes_per == 4 => {
                take_words(v.iter().copied(), v.len(), n, &file.path)?
            }
            PrimitiveValue::I32(v) if bytes_per == 4 => {
                take_words(v.iter().map(|&x| x as u32), v.len(), n, &file.path)?
            }
            // 16-bit words holding 32-bit pixels: the parser has put each
            // word in machine order, so pair the words in the file's order
            // (high word first in big endian).
            PrimitiveValue::U16(v) if bytes_per == 4 => {
                if v.len() < 2 * n {
                    return Err(short(&file.path, n, v.len() / 2, 4));
                }
                v.chunks_exact(2)
                    .take(n)
                    .map(|w| {
                        let (hi, lo) = if big { (w[0], w[1]) } else { (w[1], w[0]) };
                        (u32::from(hi) << 16) | u32::from(lo)
                    })
                    .collect()
            }
            // Other word sizes: go through bytes (already in machine order).
            PrimitiveValue::U16(_)
            | PrimitiveValue::I16(_)
            | PrimitiveValue::U32(_)
            | PrimitiveValue::I32(_) => {
                let b: Cow<'_, [u8]> = p.to_bytes();
                words_from_bytes(&b, bytes_per, false, n, &file.path)?
            }
            other => {
                return Err(Error::InvalidTag {
                    path: file.path.clone(),
                    tag: tag_name(tags::PIXEL_DATA),
                    reason: format!("unexpected value type {:?}", other.value_type()),
                });
            }
        },
        Value::Sequence(_) => {
            return Err(Error::InvalidTag {
                path: file.path.clone(),
                tag: tag_name(tags::PIXEL_DATA),
                reason: "is a sequence".into(),
            });
        }
    };
    let shift = high_bit + 1 - bits_stored;
    let mask: u64 = (1u64 << bits_stored) - 1;
    let sign_bit = 1u64 << (bits_stored - 1);
    let values = words
        .into_iter()
        .map(|w| {
            let v = (u64::from(w) >> shift) & mask;
            if signed && v & sign_bit != 0 {
                v as f64 - (1u64 << bits_stored) as f64
            } else {
                v as f64
            }
        })
        .collect();
    Ok(Pixels {
        rows,
        cols,
        frames,
        values,
    })
}

/// Decodes one RLE Lossless frame (DICOM PS3.5 Annex G): a 64-byte header
/// with the number of segments and their offsets, then one PackBits segment
/// per byte of the sample, most significant byte first.
fn rle_frame(
    data: &[u8],
    pixels: usize,
    bytes_per: usize,
    out: &mut Vec<u32>,
) -> std::result::Result<(), String> {
    let u32_at = |at: usize| -> std::result::Result<usize, String> {
        data.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| "truncated header".to_string())
    };
    let segments = u32_at(0)?;
    if segments != bytes_per {
        return Err(format!(
            "{segments} segments for {bytes_per}-byte grey samples"
        ));
    }
    let mut offsets: Vec<usize> = (0..segments)
        .map(|s| u32_at(4 + 4 * s))
        .collect::<std::result::Result<_, _>>()?;
    offsets.push(data.len());
    if offsets[0] < 64 || offsets.windows(2).any(|w| w[0] > w[1]) {
        return Err(format!(
            "segment offsets {offsets:?} are not increasing from 64"
        ));
    }
    let base = out.len();
    out.resize(base + pixels, 0);
    let mut plane = Vec::with_capacity(pixels);
    for s in 0..segments {
        let seg = &data[offsets[s]..offsets[s + 1]];
        plane.clear();
        let mut p = 0;
        while plane.len() < pixels && p < seg.len() {
            let n = seg[p] as i8;
            p += 1;
            if n >= 0 {
                let count = n as usize + 1;
                let lit = seg
                    .get(p..p + count)
                    .ok_or("literal run past the segment end")?;
                plane.extend_from_slice(lit);
                p += count;
            } else if n != -128 {
                let b = *seg.get(p).ok_or("repeat run past the segment end")?;
                plane.extend(std::iter::repeat_n(b, (1 - isize::from(n)) as usize));
                p += 1;
            }
        }
        if plane.len() < pixels {
            return Err(format!(
                "segment {s} decodes to {} bytes, expected {pixels}",
                plane.len()
            ));
        }
        let shift = 8 * (bytes_per - 1 - s);
        for (w, &b) in out[base..].iter_mut().zip(&plane) {
            *w |= u32::from(b) << shift;
        }
    }
    Ok(())
}

fn short(path: &str, expected: usize, found: usize, bytes_per: usize) -> Error {
    Error::Truncated {
        what: format!("pixel data of {path}"),
        expected: (expected * bytes_per) as u64,
        found: (found * bytes_per) as u64,
    }
}

fn take_words(it: impl Iterator<Item = u32>, len: usize, n: usize, path: &str) -> Result<Vec<u32>> {
    if len < n {
        return Err(short(path, n, len, 2));
    }
    Ok(it.take(n).collect())
}

fn words_from_bytes(
    b: &[u8],
    bytes_per: usize,
    big: bool,
    n: usize,
    path: &str,
) -> Result<Vec<u32>> {
    if b.len() < n * bytes_per {
        return Err(short(path, n, b.len() / bytes_per, bytes_per));
    }
    let b = &b[..n * bytes_per];
    Ok(match bytes_per {
        1 => b.iter().map(|&x| u32::from(x)).collect(),
        2 => b
            .chunks_exact(2)
            .map(|c| u32::from(u16::from_le_bytes(little_endian(c, big))))
            .collect(),
        _ => b
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(little_endian(c, big)))
            .collect(),
    })
}

/// Parses DA (`YYYYMMDD`) and TM (`HHMMSS.FFFFFF`, colons tolerated, fields
/// after the hour optional) into seconds since 1970-01-01 (the time zone is
/// ignored: both ends of an interval come from the same scanner).
pub(crate) fn parse_da_tm(da: Option<&str>, tm: &str) -> Option<f64> {
    let day = match da {
        Some(d) => parse_da(d)?,
        None => 0,
    };
    Some(day as f64 * 86400.0 + parse_tm(tm)?)
}

pub(crate) fn parse_da(d: &str) -> Option<i64> {
    let d: String = d.chars().filter(char::is_ascii_digit).collect();
    if d.len() != 8 {
        return None;
    }
    let y: i64 = d[0..4].parse().ok()?;
    let m: u32 = d[4..6].parse().ok()?;
    let dd: u32 = d[6..8].parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&dd) {
        return None;
    }
    Some(days_from_civil(y, m, dd))
}

pub(crate) fn parse_tm(t: &str) -> Option<f64> {
    let t: String = t.trim().chars().filter(|c| *c != ':').collect();
    let (int, frac) = match t.split_once('.') {
        Some((a, b)) => (a.to_string(), b.to_string()),
        None => (t.clone(), String::new()),
    };
    if int.len() < 2
        || int.len() > 6
        || int.len() % 2 != 0
        || !int.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let h: f64 = int[0..2].parse().ok()?;
    let m: f64 = if int.len() >= 4 {
        int[2..4].parse().ok()?
    } else {
        0.0
    };
    let s: f64 = if int.len() >= 6 {
        int[4..6].parse().ok()?
    } else {
        0.0
    };
    let f: f64 = if frac.is_empty() {
        0.0
    } else if frac.bytes().all(|b| b.is_ascii_digit()) && frac.len() <= 6 {
        format!("0.{frac}").parse().ok()?
    } else {
        return None;
    };
    if h >= 24.0 || m >= 60.0 || s >= 61.0 {
        return None;
    }
    Some(h * 3600.0 + m * 60.0 + s + f)
}

/// Parses DT (`YYYYMMDDHHMMSS.FFFFFF&ZZXX`); the offset is ignored.
pub(crate) fn parse_dt(dt: &str) -> Option<f64> {
    let dt = dt.trim();
    let body = dt.split(['+', '-']).next()?;
    if body.len() < 8 {
        return None;
    }
    let day = parse_da(&body[..8])?;
    let rest = &body[8..];
    let secs = if rest.is_empty() {
        0.0
    } else {
        parse_tm(rest)?
    };
    Some(day as f64 * 86400.0 + secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ds_fits_sixteen_characters() {
        for v in [
            0.0,
            -0.0,
            1.0,
            -1.5,
            1.0 / 3.0,
            123456.789012345,
            -1e-7,
            6.02e23,
            -987_654_321.123_456_8,
        ] {
            let s = ds(v);
            assert!(s.len() <= 16, "{s}");
            let back: f64 = s.parse().unwrap();
            let tol = 1e-9 * v.abs().max(1e-6);
            assert!((back - v).abs() <= tol.max(1e-12), "{v} -> {s}");
        }
    }

    #[test]
    fn dates_and_times() {
        // 2000-03-01 is 11017 days after the epoch.
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
        assert_eq!(civil_from_days(11017), (2000, 3, 1));
        assert_eq!(parse_tm("101530.5"), Some(36930.5));
        assert_eq!(parse_tm("10:15:30"), Some(36930.0));
        assert_eq!(parse_tm("1015"), Some(36900.0));
        assert_eq!(parse_tm("25"), None);
        assert_eq!(
            parse_dt("20000301101530.25+0100"),
            Some(11017.0 * 86400.0 + 36930.25)
        );
    }

    #[test]
    fn uids_are_unique_and_valid() {
        let a = new_uid();
        let b = new_uid();
        assert_ne!(a, b);
        for u in [a, b] {
            assert!(u.len() <= 64 && u.starts_with("2.25."));
            assert!(u[5..].bytes().all(|c| c.is_ascii_digit()));
            assert!(!u[5..].starts_with('0'));
        }
    }
}
