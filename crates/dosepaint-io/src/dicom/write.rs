//! Image series writer: one DICOM file per slice (CT, MR, PET).

use std::path::{Path, PathBuf};

use dicom_core::value::{C, PrimitiveValue};
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;
use dosepaint_core::{PatientPosition, Volume};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::PatientInfo;
use super::common::{Common, Put, WriteSyntax, check_rows_columns, ds, new_uid, write_dataset};
use super::suv::DecayCorrection;
use crate::image::{Image, ImageData, Modality, Units};
use crate::{Error, Result};

/// PET acquisition facts to write with a PET series (so that SUV can be
/// computed from the files).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PetAcquisition {
    /// Patient weight, kg.
    pub weight_kg: f64,
    /// Injected activity, Bq.
    pub injected_bq: f64,
    /// Radionuclide half-life, s (F-18: 6586.2).
    pub half_life_s: f64,
    /// Injection date and time, DICOM DT (`YYYYMMDDHHMMSS`).
    pub injection_datetime: String,
    /// Series (scan start) date, DA.
    pub series_date: String,
    /// Series (scan start) time, TM.
    pub series_time: String,
    /// How the values are decay-corrected.
    pub decay_correction: DecayCorrection,
}

/// Options for [`write_series`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesWriteOptions {
    /// Patient.
    pub patient: PatientInfo,
    /// Study UID (`None`: the image's, else a new one).
    pub study_uid: Option<String>,
    /// Series UID (`None`: a new one).
    pub series_uid: Option<String>,
    /// Frame of reference (`None`: the image's, else a new one).
    pub frame_of_reference_uid: Option<String>,
    /// Series Description.
    pub series_description: String,
    /// Series Number.
    pub series_number: i64,
    /// Patient Position to state (`None`: the image's; written empty if
    /// unknown, never assumed).
    pub patient_position: Option<PatientPosition>,
    /// Transfer syntax.
    pub syntax: WriteSyntax,
    /// PET facts, required for a PET image.
    pub pet: Option<PetAcquisition>,
    /// File name prefix (`<prefix><k>.dcm`).
    pub file_prefix: String,
}

impl Default for SeriesWriteOptions {
    fn default() -> Self {
        Self {
            patient: PatientInfo::default(),
            study_uid: None,
            series_uid: None,
            frame_of_reference_uid: None,
            series_description: "dosepaint".into(),
            series_number: 1,
            patient_position: None,
            syntax: WriteSyntax::default(),
            pet: None,
            file_prefix: "IM".into(),
        }
    }
}

/// What [`write_series`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenSeries {
    /// The files, by slice index `k`.
    pub files: Vec<PathBuf>,
    /// Study Instance UID.
    pub study_uid: String,
    /// Series Instance UID.
    pub series_uid: String,
    /// Frame of Reference UID.
    pub frame_of_reference_uid: String,
    /// SOP Class UID of the slices.
    pub sop_class_uid: String,
    /// SOP Instance UID of each slice.
    pub slice_uids: Vec<String>,
}

/// Writes a CT volume in HU as a CT series (see [`write_series`]).
///
/// # Errors
/// As [`write_series`].
pub fn write_ct_series(
    dir: impl AsRef<Path>,
    hu: &Volume<i16>,
    options: &SeriesWriteOptions,
) -> Result<WrittenSeries> {
    let image = Image::new(ImageData::I16(hu.clone()), Modality::Ct, Units::Hu);
    write_series(dir, &image, options)
}

/// Writes an image as one DICOM file per slice into `dir` (created if
/// needed): CT Image Storage (HU stored as signed 16-bit, slope 1), MR Image
/// Storage (ADC maps in mm^2/s are stored in 1e-6 mm^2/s, as scanners do,
/// with image type `DERIVED\SECONDARY\ADC`) or PET Image Storage (Bq/mL,
/// units `BQML`). Real values are stored as 16-bit integers with a per-slice
/// Rescale Slope (`max |v| / 32767`, intercept 0), which keeps 4 to 5
/// significant digits. Slice `k` lies at the grid's voxel `(0, 0, k)`.
///
/// # Errors
/// [`Error::InvalidInput`] for a modality or units that cannot be written
/// (PET must be Bq/mL and needs [`SeriesWriteOptions::pet`]), non-finite
/// voxels; I/O errors.
pub fn write_series(
    dir: impl AsRef<Path>,
    image: &Image,
    options: &SeriesWriteOptions,
) -> Result<WrittenSeries> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let (sop_class, modality) = match (&image.modality, image.units) {
        (Modality::Ct, Units::Hu) => (uids::CT_IMAGE_STORAGE, "CT"),
        (Modality::Mr, Units::AsStored | Units::Mm2PerS) => (uids::MR_IMAGE_STORAGE, "MR"),
        (Modality::Pt, Units::BqPerMl) => {
            if options.pet.is_none() {
                return Err(Error::input(
                    "PET series",
                    "SeriesWriteOptions::pet (weight, activity, times) is required",
                ));
            }
            (uids::POSITRON_EMISSION_TOMOGRAPHY_IMAGE_STORAGE, "PT")
        }
        (m, u) => {
            return Err(Error::input(
                "image series",
                format!("cannot write modality {} with units {u:?}", m.as_dicom()),
            ));
        }
    };
    let grid = image.grid().clone();
    if let ImageData::F32(v) = &image.data {
        v.ensure_finite("image to write")?;
    }
    let [nx, ny, nz] = grid.dims();
    check_rows_columns("image series", nx, ny)?;
    let study_uid = options
        .study_uid
        .clone()
        .or_else(|| image.study_uid.clone())
        .unwrap_or_else(new_uid);
    let series_uid = options.series_uid.clone().unwrap_or_else(new_uid);
    let frame_uid = options
        .frame_of_reference_uid
        .clone()
        .or_else(|| image.frame_of_reference_uid.clone())
        .unwrap_or_else(new_uid);
    let position = options.patient_position.or(image.patient_position);
    let slice_uids: Vec<String> = (0..nz).map(|_| new_uid()).collect();
    let files: Vec<PathBuf> = (0..nz)
        .map(|k| dir.join(format!("{}{:05}.dcm", options.file_prefix, k + 1)))
        .collect();
    let adc = image.units == Units::Mm2PerS;
    let dir_rows = grid.direction();
    let spacing = grid.spacing_mm();
    let n_slice = nx * ny;
    (0..nz).into_par_iter().try_for_each(|k| -> Result<()> {
        let mut obj = InMemDicomObject::new_empty();
        Common {
            sop_class,
            sop_instance: &slice_uids[k],
            modality,
            patient: &options.patient,
            study_uid: &study_uid,
            series_uid: &series_uid,
            series_number: options.series_number,
            series_description: &options.series_description,
            frame_of_reference_uid: Some(&frame_uid),
            instance_number: k as i64 + 1,
        }
        .put(&mut obj);
        obj.put_str(
            tags::PATIENT_POSITION,
            VR::CS,
            position.map_or("", PatientPosition::as_dicom),
        );
        obj.put_str(tags::PATIENT_ORIENTATION, VR::CS, "");
        let ipp = grid.index_to_patient([0.0, 0.0, k as f64]);
        obj.put_ds(tags::IMAGE_POSITION_PATIENT, &ipp);
        let iop = [
            dir_rows[0][0],
            dir_rows[0][1],
            dir_rows[0][2],
            dir_rows[1][0],
            dir_rows[1][1],
            dir_rows[1][2],
        ];
        obj.put_ds(tags::IMAGE_ORIENTATION_PATIENT, &iop);
        obj.put_ds(tags::PIXEL_SPACING, &[spacing[1], spacing[0]]);
        obj.put_ds(tags::SLICE_THICKNESS, &[spacing[2]]);
        let normal = dir_rows[2];
        obj.put_ds(
            tags::SLICE_LOCATION,
            &[ipp[0] * normal[0] + ipp[1] * normal[1] + ipp[2] * normal[2]],
        );
        obj.put_us(tags::SAMPLES_PER_PIXEL, 1);
        obj.put_str(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2");
        obj.put_us(tags::ROWS, ny as u16);
        obj.put_us(tags::COLUMNS, nx as u16);
        obj.put_us(tags::BITS_ALLOCATED, 16);
        obj.put_us(tags::BITS_STORED, 16);
        obj.put_us(tags::HIGH_BIT, 15);
        obj.put_us(tags::PIXEL_REPRESENTATION, 1);
        let stored: Vec<i16> = match &image.data {
            ImageData::I16(v) => {
                obj.put_ds(tags::RESCALE_INTERCEPT, &[0.0]);
                obj.put_ds(tags::RESCALE_SLOPE, &[1.0]);
                v.as_slice()[k * n_slice..(k + 1) * n_slice].to_vec()
            }
            ImageData::F32(v) => {
                let unit = if adc { 1e6 } else { 1.0 };
                let slice: Vec<f64> = v.as_slice()[k * n_slice..(k + 1) * n_slice]
                    .iter()
                    .map(|&x| f64::from(x) * unit)
                    .collect();
                let max = slice.iter().fold(0.0f64, |m, x| m.max(x.abs()));
                // The slope is written as a DS: a small margin keeps the
                // largest value within 16 bits after the DS rounding.
                let slope_str = if max > 0.0 {
                    ds(max / 32767.0 * (1.0 + 1e-6))
                } else {
                    "1".into()
                };
                let slope: f64 = slope_str.parse().expect("DS parses");
                obj.put_ds(tags::RESCALE_INTERCEPT, &[0.0]);
                obj.put_str(tags::RESCALE_SLOPE, VR::DS, slope_str);
                slice.iter().map(|&x| (x / slope).round() as i16).collect()
            }
        };
        match modality {
            "CT" => {
                obj.put_strs(
                    tags::IMAGE_TYPE,
                    VR::CS,
                    vec!["ORIGINAL".into(), "PRIMARY".into(), "AXIAL".into()],
                );
                obj.put_str(tags::RESCALE_TYPE, VR::LO, "HU");
                obj.put_str(tags::KVP, VR::DS, "");
                obj.put_str(tags::ACQUISITION_NUMBER, VR::IS, "");
            }
            "MR" => {
                let image_type = if adc {
                    vec!["DERIVED".into(), "SECONDARY".into(), "ADC".into()]
                } else {
                    vec!["DERIVED".into(), "SECONDARY".into()]
                };
                obj.put_strs(tags::IMAGE_TYPE, VR::CS, image_type);
                obj.put_str(tags::SCANNING_SEQUENCE, VR::CS, "RM");
                obj.put_str(tags::SEQUENCE_VARIANT, VR::CS, "NONE");
                obj.put_str(tags::SCAN_OPTIONS, VR::CS, "");
                obj.put_str(tags::MR_ACQUISITION_TYPE, VR::CS, "3D");
                obj.put_str(tags::ECHO_TIME, VR::DS, "");
                obj.put_str(tags::ECHO_TRAIN_LENGTH, VR::IS, "");
            }
            _ => put_pet(
                &mut obj,
                options.pet.as_ref().expect("checked above"),
                k,
                nz,
            ),
        }
        obj.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(C::from_vec(stored.iter().map(|&v| v as u16).collect())),
        ));
        write_dataset(obj, &files[k], options.syntax)
    })?;
    Ok(WrittenSeries {
        files,
        study_uid,
        series_uid,
        frame_of_reference_uid: frame_uid,
        sop_class_uid: sop_class.to_string(),
        slice_uids,
    })
}

fn put_pet(obj: &mut InMemDicomObject, pet: &PetAcquisition, k: usize, nz: usize) {
    obj.put_strs(
        tags::IMAGE_TYPE,
        VR::CS,
        vec!["ORIGINAL".into(), "PRIMARY".into()],
    );
    obj.put_str(tags::SERIES_DATE, VR::DA, pet.series_date.clone());
    obj.put_str(tags::SERIES_TIME, VR::TM, pet.series_time.clone());
    obj.put_str(tags::ACQUISITION_DATE, VR::DA, pet.series_date.clone());
    obj.put_str(tags::ACQUISITION_TIME, VR::TM, pet.series_time.clone());
    obj.put_ds(tags::PATIENT_WEIGHT, &[pet.weight_kg]);
    obj.put_strs(
        tags::SERIES_TYPE,
        VR::CS,
        vec!["STATIC".into(), "IMAGE".into()],
    );
    obj.put_str(tags::UNITS, VR::CS, "BQML");
    obj.put_str(tags::COUNTS_SOURCE, VR::CS, "EMISSION");
    obj.put_strs(
        tags::CORRECTED_IMAGE,
        VR::CS,
        vec!["DECY".into(), "ATTN".into()],
    );
    obj.put_str(
        tags::DECAY_CORRECTION,
        VR::CS,
        match pet.decay_correction {
            DecayCorrection::Start => "START",
            DecayCorrection::Admin => "ADMIN",
        },
    );
    obj.put_us(tags::NUMBER_OF_SLICES, nz.min(65535) as u16);
    obj.put_us(tags::IMAGE_INDEX, (k + 1).min(65535) as u16);
    obj.put_ds(tags::FRAME_REFERENCE_TIME, &[0.0]);
    obj.put_str(tags::ACTUAL_FRAME_DURATION, VR::IS, "0");
    let mut rp = InMemDicomObject::new_empty();
    rp.put_str(tags::RADIOPHARMACEUTICAL, VR::LO, "Fluorodeoxyglucose");
    rp.put_str(
        tags::RADIOPHARMACEUTICAL_START_DATE_TIME,
        VR::DT,
        pet.injection_datetime.clone(),
    );
    rp.put_ds(tags::RADIONUCLIDE_TOTAL_DOSE, &[pet.injected_bq]);
    rp.put_ds(tags::RADIONUCLIDE_HALF_LIFE, &[pet.half_life_s]);
    obj.put_seq(tags::RADIOPHARMACEUTICAL_INFORMATION_SEQUENCE, vec![rp]);
}
