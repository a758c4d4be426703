//! RT Dose: a multi-frame dose grid in Gy, read and written.

use std::path::Path;

use dicom_core::value::{C, PrimitiveValue};
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;
use dosepaint_core::{Grid, Volume};
use serde::{Deserialize, Serialize};

use super::PatientInfo;
use super::common::{
    Common, DicomFile, Put, WriteSyntax, check_rows_columns, decode_pixels, dot, ds, image_axes,
    new_uid,
};
use crate::{Error, Result};

/// Dose Summation Type (3004,000A).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DoseSummation {
    /// `PLAN`: the whole course of one plan (dosepaint's course doses).
    Plan,
    /// `MULTI_PLAN`.
    MultiPlan,
    /// `FRACTION`: one fraction.
    Fraction,
    /// `BEAM`: one beam.
    Beam,
    /// Any other code, as written.
    Other(String),
}

impl DoseSummation {
    fn from_code(s: &str) -> Self {
        match s {
            "PLAN" => Self::Plan,
            "MULTI_PLAN" => Self::MultiPlan,
            "FRACTION" => Self::Fraction,
            "BEAM" => Self::Beam,
            other => Self::Other(other.to_string()),
        }
    }

    /// The DICOM code.
    pub fn code(&self) -> &str {
        match self {
            Self::Plan => "PLAN",
            Self::MultiPlan => "MULTI_PLAN",
            Self::Fraction => "FRACTION",
            Self::Beam => "BEAM",
            Self::Other(s) => s,
        }
    }
}

/// An RT Dose as read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RtDose {
    /// Dose per voxel: Gy, or relative values when `relative` is set.
    pub dose: Volume<f32>,
    /// Whether Dose Units were `RELATIVE` (only with
    /// [`RtDoseReadOptions::accept_relative`]).
    pub relative: bool,
    /// Dose Summation Type.
    pub summation: DoseSummation,
    /// Dose Type (`PHYSICAL`, `EFFECTIVE`, `ERROR`).
    pub dose_type: String,
    /// Frame of Reference UID.
    pub frame_of_reference_uid: Option<String>,
    /// Study Instance UID.
    pub study_uid: Option<String>,
    /// SOP Instance UID of the referenced RT Plan.
    pub referenced_plan_uid: Option<String>,
}

/// Options for [`read_rtdose`].
#[derive(Debug, Clone, PartialEq)]
pub struct RtDoseReadOptions {
    /// Accept `RELATIVE` dose units (values are then not Gy).
    pub accept_relative: bool,
    /// Largest deviation of a frame offset from the regular spacing, mm.
    pub spacing_tolerance_mm: f64,
}

impl Default for RtDoseReadOptions {
    fn default() -> Self {
        Self {
            accept_relative: false,
            spacing_tolerance_mm: 0.01,
        }
    }
}

/// Reads an RT Dose (16- or 32-bit, any supported transfer syntax, one or
/// many frames) as a volume in Gy: pixel value x Dose Grid Scaling. Frame
/// `k` lies at `ImagePositionPatient + GridFrameOffsetVector[k] * n` with
/// `n` the slice normal (offsets relative to the first frame; the older
/// absolute form, first offset equal to the first frame's position along
/// `n`, is recognised too). Decreasing offsets give a grid whose third axis
/// points along `-n`.
///
/// # Errors
/// [`Error::WrongModality`], [`Error::RelativeDose`],
/// [`Error::MissingTag`], [`Error::InvalidTag`],
/// [`Error::NonUniformSpacing`], and the file errors.
pub fn read_rtdose(path: impl AsRef<Path>, options: &RtDoseReadOptions) -> Result<RtDose> {
    rtdose_from(&DicomFile::open(path.as_ref(), false)?, options)
}

/// Reads an RT Dose from bytes in memory.
///
/// # Errors
/// As [`read_rtdose`].
pub fn read_rtdose_bytes(bytes: &[u8], name: &str, options: &RtDoseReadOptions) -> Result<RtDose> {
    rtdose_from(&DicomFile::from_bytes(bytes, name, false)?, options)
}

fn rtdose_from(file: &DicomFile, options: &RtDoseReadOptions) -> Result<RtDose> {
    file.require_modality("RTDOSE", "an RT Dose")?;
    let root = file.root();
    let units = root.str_req(tags::DOSE_UNITS, "RT Dose module")?;
    let relative = match units.as_str() {
        "GY" => false,
        _ if options.accept_relative => true,
        _ => {
            return Err(Error::RelativeDose {
                path: file.path.clone(),
                units,
            });
        }
    };
    let ctx = "RT Dose geometry";
    let ipp = root.f64s_req(tags::IMAGE_POSITION_PATIENT, 3, ctx)?;
    let iop = root.f64s_req(tags::IMAGE_ORIENTATION_PATIENT, 6, ctx)?;
    let ps = root.positive_f64s_req(tags::PIXEL_SPACING, 2, ctx, " mm")?;
    let scaling =
        root.positive_f64_req(tags::DOSE_GRID_SCALING, "converts pixel values to dose", "")?;
    let pixels = decode_pixels(file)?;
    let [row, col, normal] = image_axes(&file.path, iop.try_into().expect("six values checked"))?;
    let frames = pixels.frames;
    let (dz, sign) = if frames > 1 {
        let mut off = root.f64s_req(
            tags::GRID_FRAME_OFFSET_VECTOR,
            frames,
            "a multi-frame dose needs the position of every frame",
        )?;
        if off[0] != 0.0 {
            let along = dot([ipp[0], ipp[1], ipp[2]], normal);
            if (off[0] - along).abs() <= options.spacing_tolerance_mm.max(1e-3) {
                for o in &mut off {
                    *o -= along;
                }
            } else {
                return Err(root.invalid(
                    tags::GRID_FRAME_OFFSET_VECTOR,
                    format!(
                        "first offset {} is neither 0 (relative) nor the first frame's \
                         position {along} along the normal (absolute)",
                        off[0]
                    ),
                ));
            }
        }
        let gaps: Vec<f64> = off.windows(2).map(|w| w[1] - w[0]).collect();
        let g0 = gaps[0];
        if g0 == 0.0
            || gaps
                .iter()
                .any(|g| (g - g0).abs() > options.spacing_tolerance_mm)
        {
            return Err(Error::NonUniformSpacing {
                what: format!("RT Dose {}", file.path),
                detail: format!("GridFrameOffsetVector gaps {gaps:?} mm"),
                tolerance_mm: options.spacing_tolerance_mm,
            });
        }
        let spacing = (off[frames - 1] - off[0]) / (frames - 1) as f64;
        (spacing.abs(), spacing.signum())
    } else {
        let t = root
            .f64(tags::SLICE_THICKNESS)?
            .filter(|t| *t > 0.0)
            .unwrap_or(1.0);
        (t, 1.0)
    };
    let grid = Grid::with_direction(
        [pixels.cols, pixels.rows, frames],
        [ps[1], ps[0], dz],
        [ipp[0], ipp[1], ipp[2]],
        [row, col, normal.map(|v| v * sign)],
    )?;
    let dose: Vec<f32> = pixels
        .values
        .iter()
        .map(|&v| (v * scaling) as f32)
        .collect();
    let referenced_plan_uid = root
        .seq(tags::REFERENCED_RT_PLAN_SEQUENCE)
        .first()
        .and_then(|i| i.str(tags::REFERENCED_SOP_INSTANCE_UID));
    Ok(RtDose {
        dose: Volume::from_vec(grid, dose)?,
        relative,
        summation: DoseSummation::from_code(
            &root.str(tags::DOSE_SUMMATION_TYPE).unwrap_or_default(),
        ),
        dose_type: root.str(tags::DOSE_TYPE).unwrap_or_default(),
        frame_of_reference_uid: root.str(tags::FRAME_OF_REFERENCE_UID),
        study_uid: root.str(tags::STUDY_INSTANCE_UID),
        referenced_plan_uid,
    })
}

/// Options for [`write_rtdose`].
#[derive(Debug, Clone, PartialEq)]
pub struct RtDoseWriteOptions {
    /// Dose Summation Type (default `PLAN`: a course dose).
    pub summation: DoseSummation,
    /// Bits per pixel: 16 or 32 (default 32: a resolution of max/4.3e9).
    pub bits: u16,
    /// Patient.
    pub patient: PatientInfo,
    /// Study UID (`None`: new).
    pub study_uid: Option<String>,
    /// Frame of reference of the dose grid (should be the planning CT's).
    pub frame_of_reference_uid: Option<String>,
    /// SOP Instance UID of the RT Plan this dose belongs to.
    pub referenced_plan_uid: Option<String>,
    /// Transfer syntax (explicit big endian is refused for 32 bits).
    pub syntax: WriteSyntax,
}

impl Default for RtDoseWriteOptions {
    fn default() -> Self {
        Self {
            summation: DoseSummation::Plan,
            bits: 32,
            patient: PatientInfo::default(),
            study_uid: None,
            frame_of_reference_uid: None,
            referenced_plan_uid: None,
            syntax: WriteSyntax::default(),
        }
    }
}

/// Writes a dose volume (Gy) as a multi-frame RT Dose with unsigned pixels
/// and `DoseGridScaling = max / (2^bits - 1)` (so the quantisation error is
/// at most half of that). Frame offsets are relative (first 0). Returns the
/// SOP Instance UID.
///
/// # Errors
/// [`Error::InvalidInput`] for negative or non-finite doses, bits other than
/// 16/32, or a 32-bit big-endian request; I/O errors.
pub fn write_rtdose(
    path: impl AsRef<Path>,
    dose: &Volume<f32>,
    options: &RtDoseWriteOptions,
) -> Result<String> {
    dose.ensure_finite("dose to write")?;
    if let Some(n) = dose.as_slice().iter().position(|&d| d < 0.0) {
        return Err(Error::input(
            "RT Dose",
            format!(
                "negative dose {} Gy at voxel {:?}: RT Dose pixels are unsigned",
                dose.as_slice()[n],
                dose.grid().voxel_index(n)
            ),
        ));
    }
    if !matches!(options.bits, 16 | 32) {
        return Err(Error::input(
            "RT Dose bits",
            format!("{}: use 16 or 32", options.bits),
        ));
    }
    if options.bits == 32 && options.syntax == WriteSyntax::ExplicitBig {
        return Err(Error::input(
            "RT Dose transfer syntax",
            "32-bit dose in explicit big endian is not written; use a little-endian syntax",
        ));
    }
    let grid = dose.grid();
    let [nx, ny, nz] = grid.dims();
    check_rows_columns("RT Dose", nx, ny)?;
    let max = dose
        .as_slice()
        .iter()
        .fold(0.0f64, |m, &d| m.max(f64::from(d)));
    let full = if options.bits == 32 {
        f64::from(u32::MAX)
    } else {
        f64::from(u16::MAX)
    };
    let scaling_str = if max > 0.0 {
        ds(max / full * (1.0 + 1e-6))
    } else {
        "1".into()
    };
    let scaling: f64 = scaling_str.parse().expect("DS parses");

    let sop_instance = new_uid();
    let study_uid = options.study_uid.clone().unwrap_or_else(new_uid);
    let frame_uid = options
        .frame_of_reference_uid
        .clone()
        .unwrap_or_else(new_uid);
    let series_uid = new_uid();
    let mut obj = InMemDicomObject::new_empty();
    Common {
        sop_class: uids::RT_DOSE_STORAGE,
        sop_instance: &sop_instance,
        modality: "RTDOSE",
        patient: &options.patient,
        study_uid: &study_uid,
        series_uid: &series_uid,
        series_number: 1,
        series_description: "dosepaint dose",
        frame_of_reference_uid: Some(&frame_uid),
        instance_number: 1,
    }
    .put(&mut obj);
    let d = grid.direction();
    let s = grid.spacing_mm();
    obj.put_ds(tags::IMAGE_POSITION_PATIENT, &grid.origin_mm());
    obj.put_ds(
        tags::IMAGE_ORIENTATION_PATIENT,
        &[d[0][0], d[0][1], d[0][2], d[1][0], d[1][1], d[1][2]],
    );
    obj.put_ds(tags::PIXEL_SPACING, &[s[1], s[0]]);
    obj.put_ds(tags::SLICE_THICKNESS, &[s[2]]);
    // The frames run along the grid's third axis; offsets are measured along
    // the normal row x column, which is that axis or its opposite.
    let normal = [
        d[0][1] * d[1][2] - d[0][2] * d[1][1],
        d[0][2] * d[1][0] - d[0][0] * d[1][2],
        d[0][0] * d[1][1] - d[0][1] * d[1][0],
    ];
    let sign = (normal[0] * d[2][0] + normal[1] * d[2][1] + normal[2] * d[2][2]).signum();
    let offsets: Vec<f64> = (0..nz).map(|k| sign * k as f64 * s[2]).collect();
    obj.put_ds(tags::GRID_FRAME_OFFSET_VECTOR, &offsets);
    obj.put_is(tags::NUMBER_OF_FRAMES, nz as i64);
    obj.put(DataElement::new(
        tags::FRAME_INCREMENT_POINTER,
        VR::AT,
        PrimitiveValue::Tags(C::from_vec(vec![tags::GRID_FRAME_OFFSET_VECTOR])),
    ));
    obj.put_us(tags::SAMPLES_PER_PIXEL, 1);
    obj.put_str(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2");
    obj.put_us(tags::ROWS, ny as u16);
    obj.put_us(tags::COLUMNS, nx as u16);
    obj.put_us(tags::BITS_ALLOCATED, options.bits);
    obj.put_us(tags::BITS_STORED, options.bits);
    obj.put_us(tags::HIGH_BIT, options.bits - 1);
    obj.put_us(tags::PIXEL_REPRESENTATION, 0);
    obj.put_str(tags::DOSE_UNITS, VR::CS, "GY");
    obj.put_str(tags::DOSE_TYPE, VR::CS, "PHYSICAL");
    obj.put_str(
        tags::DOSE_SUMMATION_TYPE,
        VR::CS,
        options.summation.code().to_string(),
    );
    obj.put_str(tags::DOSE_GRID_SCALING, VR::DS, scaling_str);
    if let Some(plan) = &options.referenced_plan_uid {
        let mut it = InMemDicomObject::new_empty();
        it.put_str(
            tags::REFERENCED_SOP_CLASS_UID,
            VR::UI,
            uids::RT_PLAN_STORAGE,
        );
        it.put_str(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, plan.clone());
        obj.put_seq(tags::REFERENCED_RT_PLAN_SEQUENCE, vec![it]);
    }
    let quantise = |g: f32| (f64::from(g) / scaling).round();
    let value = if options.bits == 32 {
        let bytes: Vec<u8> = dose
            .as_slice()
            .iter()
            .flat_map(|&g| (quantise(g) as u32).to_le_bytes())
            .collect();
        PrimitiveValue::U8(C::from_vec(bytes))
    } else {
        PrimitiveValue::U16(C::from_vec(
            dose.as_slice()
                .iter()
                .map(|&g| quantise(g) as u16)
                .collect(),
        ))
    };
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OW, value));
    super::common::write_dataset(obj, path.as_ref(), options.syntax)?;
    Ok(sop_instance)
}
