//! DICOM: image series (CT, MR, PET), RT Structure Set, RT Dose, RT Plan and
//! Spatial Registration, read and written with dicom-rs.
//!
//! Coordinates are DICOM patient coordinates (LPS, mm) throughout; a grid's
//! axes are the image's row direction, column direction and slice normal.

mod common;
mod reg;
mod rtdose;
mod rtplan;
mod rtstruct;
mod series;
mod suv;
mod write;

pub use common::{PatientInfo, WriteSyntax, new_uid};
pub use reg::{
    RegisteredFrame, Registration, read_registration, read_registration_bytes, write_registration,
};
pub use rtdose::{
    DoseSummation, RtDose, RtDoseReadOptions, RtDoseWriteOptions, read_rtdose, read_rtdose_bytes,
    write_rtdose,
};
pub use rtplan::{PlanBeam, RtPlan, RtPlanToWrite, read_rtplan, read_rtplan_bytes, write_rtplan};
pub use rtstruct::{
    Contour, ContourKind, ReferencedSeries, Roi, RoiToWrite, RtStruct, RtStructWriteOptions,
    read_rtstruct, read_rtstruct_bytes, write_rtstruct,
};
pub use series::{
    AdcScale, PetValues, SeriesInfo, SeriesReadOptions, SeriesSelector, list_files, read_series,
    read_series_dir, scan_series,
};
pub use suv::{DecayCorrection, SuvParameters};
pub use write::{PetAcquisition, SeriesWriteOptions, WrittenSeries, write_ct_series, write_series};

/// Parses one DICOM data set from memory (standard file, or a bare data set
/// without preamble and file meta group) and returns its SOP Class UID and
/// Modality. This is the entry point of the fuzz target for the dataset
/// reader; the typed readers (`read_rtdose_bytes`...) build on the same
/// parser.
///
/// # Errors
/// [`crate::Error::DicomRead`] when the bytes are not a DICOM data set.
pub fn parse_dataset_bytes(
    bytes: &[u8],
    name: &str,
) -> crate::Result<(Option<String>, Option<String>)> {
    let f = common::DicomFile::from_bytes(bytes, name, false)?;
    let root = f.root();
    Ok((
        root.str(dicom_dictionary_std::tags::SOP_CLASS_UID),
        root.str(dicom_dictionary_std::tags::MODALITY),
    ))
}

/// Decodes the stored pixel values (before rescale) of a single-sample DICOM
/// image held in memory: `(rows, columns, frames, values)`. Native syntaxes
/// in either byte order and RLE are decoded; other compressed syntaxes are
/// [`crate::Error::UnsupportedTransferSyntax`].
///
/// # Errors
/// File, attribute and transfer-syntax errors.
pub fn decode_pixel_bytes(
    bytes: &[u8],
    name: &str,
) -> crate::Result<(usize, usize, usize, Vec<f64>)> {
    let f = common::DicomFile::from_bytes(bytes, name, false)?;
    let p = common::decode_pixels(&f)?;
    Ok((p.rows, p.cols, p.frames, p.values))
}
