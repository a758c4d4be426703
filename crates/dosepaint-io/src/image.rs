//! Images as read from files: a volume plus what it is (modality, units,
//! frame of reference, identifiers, patient position).

use dosepaint_core::{Grid, PatientPosition, Volume};
use serde::{Deserialize, Serialize};

use crate::dicom::PatientInfo;

/// Imaging modality.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Modality {
    /// Computed tomography (`CT`).
    Ct,
    /// Magnetic resonance (`MR`).
    Mr,
    /// Positron emission tomography (`PT`).
    Pt,
    /// Anything else, with its DICOM code (or `""` when unknown, e.g. NIfTI).
    Other(String),
}

impl Modality {
    /// From the DICOM Modality code.
    pub fn from_dicom(code: &str) -> Self {
        match code.trim() {
            "CT" => Self::Ct,
            "MR" => Self::Mr,
            "PT" => Self::Pt,
            other => Self::Other(other.to_string()),
        }
    }

    /// The DICOM Modality code.
    pub fn as_dicom(&self) -> &str {
        match self {
            Self::Ct => "CT",
            Self::Mr => "MR",
            Self::Pt => "PT",
            Self::Other(s) => s,
        }
    }
}

/// Units of image values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Units {
    /// Hounsfield units (CT).
    Hu,
    /// Activity concentration, Bq/mL (PET, decay-corrected as the file says).
    BqPerMl,
    /// Body-weight standardised uptake value, g/mL (dimensionless for a
    /// tissue density of 1 g/mL).
    SuvBw,
    /// Diffusivity in mm^2/s (ADC maps).
    Mm2PerS,
    /// Values as stored, after the modality rescale (e.g. MR signal).
    AsStored,
}

/// The voxel values of an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ImageData {
    /// 16-bit integers (CT in HU).
    I16(Volume<i16>),
    /// 32-bit floats (MR, PET, ADC, anything rescaled).
    F32(Volume<f32>),
}

impl ImageData {
    /// The grid.
    pub fn grid(&self) -> &Grid {
        match self {
            Self::I16(v) => v.grid(),
            Self::F32(v) => v.grid(),
        }
    }

    /// The values as `f32`.
    pub fn to_f32(&self) -> Volume<f32> {
        match self {
            Self::I16(v) => v.map(|&x| f32::from(x)),
            Self::F32(v) => v.clone(),
        }
    }
}

/// An image volume with its DICOM identity.
///
/// Coordinates are LPS mm (the grid). `patient_position` is what the file
/// states (`None` when it does not): image geometry in LPS is correct for any
/// position, and beam geometry (`dosepaint_core::Beam::geometry`) takes the
/// position explicitly and refuses the decubitus ones, so nothing here
/// assumes head-first supine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// The values.
    pub data: ImageData,
    /// Modality.
    pub modality: Modality,
    /// Units of the values.
    pub units: Units,
    /// DICOM Patient Position (0018,5100), if stated.
    pub patient_position: Option<PatientPosition>,
    /// Frame of Reference UID (0020,0052).
    pub frame_of_reference_uid: Option<String>,
    /// Study Instance UID.
    pub study_uid: Option<String>,
    /// Series Instance UID.
    pub series_uid: Option<String>,
    /// Series Description.
    pub series_description: String,
    /// Patient name and ID.
    pub patient: PatientInfo,
    /// SOP Class UID of the slices (for references from RTSTRUCT).
    pub sop_class_uid: Option<String>,
    /// SOP Instance UID of slice `k` (empty for images not read from DICOM).
    pub slice_uids: Vec<String>,
    /// Conversions applied on reading (units, scale factors), for reports.
    pub notes: Vec<String>,
}

impl Image {
    /// An image with no DICOM identity (e.g. from NIfTI or a phantom).
    pub fn new(data: ImageData, modality: Modality, units: Units) -> Self {
        Self {
            data,
            modality,
            units,
            patient_position: None,
            frame_of_reference_uid: None,
            study_uid: None,
            series_uid: None,
            series_description: String::new(),
            patient: PatientInfo::default(),
            sop_class_uid: None,
            slice_uids: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// The grid.
    pub fn grid(&self) -> &Grid {
        self.data.grid()
    }
}
