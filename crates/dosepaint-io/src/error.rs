//! The error type of `dosepaint-io`.

use std::path::PathBuf;

/// Everything that can go wrong while reading or writing a file.
///
/// Every variant names the file (or the object) and what was wrong, so that a
/// message shown to a user says where to look. Bad input never panics: a
/// truncated file, a missing tag or an absurd header is one of these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error (file not found, permission denied...).
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A file ended before the data its header announces.
    #[error("{what} is truncated: expected {expected} bytes, found {found}")]
    Truncated {
        /// Which file or part of it.
        what: String,
        /// Bytes expected.
        expected: u64,
        /// Bytes present.
        found: u64,
    },

    /// A NIfTI header that cannot be used (bad size or magic, invalid
    /// dimensions, inconsistent fields).
    #[error("invalid NIfTI header in {path}: {reason}")]
    NiftiHeader {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },

    /// A data type code that this crate does not read or write.
    #[error("unsupported data type in {path}: {datatype}")]
    UnsupportedDatatype {
        /// The file.
        path: String,
        /// The data type (name and code).
        datatype: String,
    },

    /// A 4-D (or higher) NIfTI file read without choosing a volume.
    #[error(
        "{path} holds {volumes} volumes (4-D data, dim = {dims:?}); choose one with \
         NiftiReadOptions::volume"
    )]
    FourDimensional {
        /// The file.
        path: String,
        /// Number of 3-D volumes in the file.
        volumes: usize,
        /// The NIfTI `dim[1..]` array.
        dims: Vec<i64>,
    },

    /// A header or a caller asks for more data than is sensible.
    #[error("{what} is too large: {size} (limit {limit})")]
    TooLarge {
        /// Which object.
        what: String,
        /// The requested size.
        size: String,
        /// The limit that applies.
        limit: String,
    },

    /// dicom-rs could not parse a file as DICOM.
    #[error("cannot read DICOM file {path}: {reason}")]
    DicomRead {
        /// The file.
        path: String,
        /// The parser's message.
        reason: String,
    },

    /// dicom-rs could not write a file.
    #[error("cannot write DICOM file {path}: {reason}")]
    DicomWrite {
        /// The file.
        path: String,
        /// The writer's message.
        reason: String,
    },

    /// A required DICOM attribute is absent.
    #[error("{path}: missing required tag {tag} ({context})")]
    MissingTag {
        /// The file.
        path: String,
        /// Keyword and number of the tag, e.g. `PatientWeight (0010,1030)`.
        tag: String,
        /// What needed it.
        context: String,
    },

    /// A DICOM attribute is present but its value cannot be used.
    #[error("{path}: invalid value of {tag}: {reason}")]
    InvalidTag {
        /// The file.
        path: String,
        /// Keyword and number of the tag.
        tag: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A transfer syntax whose pixel data this crate cannot decode.
    #[error(
        "{path}: transfer syntax {uid} ({name}) is not supported; convert the file to an \
         uncompressed, deflated or RLE transfer syntax first"
    )]
    UnsupportedTransferSyntax {
        /// The file.
        path: String,
        /// Transfer syntax UID.
        uid: String,
        /// Its name.
        name: String,
    },

    /// A file of another modality or SOP class than the reader expects.
    #[error("{path}: expected {expected}, found {found}")]
    WrongModality {
        /// The file.
        path: String,
        /// What the reader needs.
        expected: String,
        /// What the file is.
        found: String,
    },

    /// No series matches the selection.
    #[error("no DICOM image series matching {selection} in {source_desc}{available}")]
    NoSeries {
        /// The selection (UID, modality or "any").
        selection: String,
        /// Where we looked.
        source_desc: String,
        /// The series that were found, for the message.
        available: String,
    },

    /// More than one series matches and the caller must choose.
    #[error("{count} series match {selection}; choose one by UID: {candidates}")]
    AmbiguousSeries {
        /// The selection.
        selection: String,
        /// How many matched.
        count: usize,
        /// UIDs and descriptions of the candidates.
        candidates: String,
    },

    /// Slices of one series have different orientations.
    #[error("series {series}: mixed image orientations ({detail})")]
    MixedOrientation {
        /// Series UID.
        series: String,
        /// Which files differ.
        detail: String,
    },

    /// Slices are offset sideways (a tilted gantry): not a regular grid.
    #[error("series {series}: gantry tilt or sheared slice stack ({detail})")]
    GantryTilt {
        /// Series UID.
        series: String,
        /// The tilt or the in-plane offset found.
        detail: String,
    },

    /// Two slices at the same position.
    #[error("series {series}: duplicated slice at {position_mm} mm along the normal ({detail})")]
    DuplicateSlice {
        /// Series UID.
        series: String,
        /// Position along the slice normal.
        position_mm: f64,
        /// The two files.
        detail: String,
    },

    /// A gap in the slice stack that is a whole number of slices wide.
    #[error(
        "series {series}: {missing} slice(s) missing between {from_mm} and {to_mm} mm along the \
         normal (spacing {spacing_mm} mm)"
    )]
    MissingSlices {
        /// Series UID.
        series: String,
        /// Estimated number of missing slices.
        missing: usize,
        /// Position of the slice before the gap.
        from_mm: f64,
        /// Position of the slice after the gap.
        to_mm: f64,
        /// The regular spacing.
        spacing_mm: f64,
    },

    /// Slice (or dose-frame) spacing that varies beyond the tolerance.
    #[error("{what}: non-uniform slice spacing ({detail}); tolerance {tolerance_mm} mm")]
    NonUniformSpacing {
        /// Series UID or file.
        what: String,
        /// The spacings found.
        detail: String,
        /// The tolerance applied.
        tolerance_mm: f64,
    },

    /// A PET series from which SUV cannot be computed.
    #[error("{path}: SUV cannot be computed: {reason}")]
    SuvUnavailable {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },

    /// An RTDOSE that is not an absolute dose in Gy.
    #[error("{path}: dose units are {units}, not GY (set RtDoseReadOptions::accept_relative)")]
    RelativeDose {
        /// The file.
        path: String,
        /// The units found.
        units: String,
    },

    /// Something a caller asked for that cannot be represented or is
    /// inconsistent (e.g. a negative dose to write, a plan without beams).
    #[error("invalid input for {what}: {reason}")]
    InvalidInput {
        /// The object or parameter.
        what: String,
        /// Why.
        reason: String,
    },

    /// A feature of a file that this crate does not handle.
    #[error("{path}: unsupported: {reason}")]
    Unsupported {
        /// The file.
        path: String,
        /// What is not supported.
        reason: String,
    },

    /// A dose-influence cache file that is not one, is corrupt or is from
    /// another format version.
    #[error("dose-influence cache {path}: {reason}")]
    Cache {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },

    /// The checksum of a dose-influence cache does not match its content.
    #[error(
        "dose-influence cache {path}: checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the file is corrupt"
    )]
    Checksum {
        /// The file.
        path: String,
        /// CRC-32 stored in the file.
        stored: u32,
        /// CRC-32 of the content.
        computed: u32,
    },

    /// A dose-influence cache written by another version of the format.
    #[error(
        "dose-influence cache {path}: format version {found}, this build reads version {supported}"
    )]
    CacheVersion {
        /// The file.
        path: String,
        /// The version in the file.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },

    /// A `.npy`/`.npz` file that cannot be used.
    #[error("{path}: {reason}")]
    Npy {
        /// The archive and member.
        path: String,
        /// What is wrong.
        reason: String,
    },

    /// An error from `dosepaint-core` (invalid grid, shape mismatch...).
    #[error(transparent)]
    Core(#[from] dosepaint_core::Error),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn input(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
