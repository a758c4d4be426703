//! Image series (CT, MR, PET) from a directory or a list of files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dosepaint_core::{Grid, PatientPosition, Volume};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::common::{DicomFile, Item, decode_pixels, dot, image_axes, parse_da_tm, tag_name};
use super::suv::suv_parameters;
use crate::image::{Image, ImageData, Modality, Units};
use crate::{Error, Result};

use super::PatientInfo;

/// One image series found by [`scan_series`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesInfo {
    /// Series Instance UID.
    pub series_uid: String,
    /// Study Instance UID.
    pub study_uid: Option<String>,
    /// Modality.
    pub modality: Modality,
    /// Series Description.
    pub description: String,
    /// Frame of Reference UID.
    pub frame_of_reference_uid: Option<String>,
    /// The files of the series, in the order found.
    pub files: Vec<PathBuf>,
}

/// Which series to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SeriesSelector {
    /// The only image series present (an error if there are several).
    Only,
    /// The series with this Series Instance UID.
    Uid(String),
    /// The only series of this modality.
    Modality(Modality),
}

/// How ADC values are stored (scanners commonly use 1e-6 mm^2/s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AdcScale {
    /// Decide from the magnitude of the values: tissue ADC lies between about
    /// 1e-4 and 3.5e-3 mm^2/s, so a median positive value above 10 means
    /// 1e-6 mm^2/s, above 0.05 means 1e-3 mm^2/s, otherwise mm^2/s.
    Auto,
    /// Stored in units of 1e-6 mm^2/s.
    MicroMm2PerS,
    /// Stored in units of 1e-3 mm^2/s.
    MilliMm2PerS,
    /// Stored in mm^2/s.
    Mm2PerS,
}

/// What PET values to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PetValues {
    /// Activity concentration in Bq/mL.
    BqPerMl,
    /// Body-weight SUV.
    SuvBw,
}

/// Options for reading a series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesReadOptions {
    /// Largest deviation of a slice gap from the regular spacing, and of a
    /// slice position from the stack axis, mm (default 0.05).
    pub position_tolerance_mm: f64,
    /// Largest difference between orientation cosines of two slices
    /// (default 1e-4).
    pub orientation_tolerance: f64,
    /// ADC storage scale for MR series recognised as ADC maps.
    pub adc_scale: AdcScale,
    /// PET output.
    pub pet_values: PetValues,
}

impl Default for SeriesReadOptions {
    fn default() -> Self {
        Self {
            position_tolerance_mm: 0.05,
            orientation_tolerance: 1e-4,
            adc_scale: AdcScale::Auto,
            pet_values: PetValues::BqPerMl,
        }
    }
}

/// All regular files under `dir` (recursively), sorted by path.
///
/// # Errors
/// [`Error::Io`] if a directory cannot be listed.
pub fn list_files(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.as_ref().to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&d, e))?;
            let p = entry.path();
            let ft = entry.file_type().map_err(|e| Error::io(&p, e))?;
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn has_dicm(path: &Path) -> bool {
    use std::io::Read;
    let mut buf = [0u8; 132];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok_and(|()| &buf[128..132] == b"DICM")
}

/// Header of one file, enough to group and select series.
struct Header {
    series_uid: String,
    study_uid: Option<String>,
    modality: String,
    description: String,
    frame_of_reference_uid: Option<String>,
}

fn open_header(path: &Path) -> Result<Option<Header>> {
    // Most headers sit in the first few kB; read the whole file only if
    // the prefix does not parse.
    use std::io::Read;
    let mut prefix = Vec::with_capacity(64 << 10);
    std::fs::File::open(path)
        .and_then(|f| f.take(64 << 10).read_to_end(&mut prefix))
        .map_err(|e| Error::io(path, e))?;
    let name = path.display().to_string();
    let file = match DicomFile::from_bytes(&prefix, &name, true) {
        Ok(f) => f,
        Err(_) => match DicomFile::open(path, true) {
            Ok(f) => f,
            Err(e) => {
                // Not DICOM at all (a README, a DICOMDIR...) is skipped; a
                // broken DICOM file is an error.
                return if has_dicm(path) { Err(e) } else { Ok(None) };
            }
        },
    };
    let root = file.root();
    let modality = root.str(tags::MODALITY).unwrap_or_default();
    let is_image = root.has(tags::IMAGE_POSITION_PATIENT) && root.has(tags::ROWS);
    if !is_image || modality.starts_with("RT") {
        return Ok(None);
    }
    let Some(series_uid) = root.str(tags::SERIES_INSTANCE_UID) else {
        return Ok(None);
    };
    Ok(Some(Header {
        series_uid,
        study_uid: root.str(tags::STUDY_INSTANCE_UID),
        modality,
        description: root.str(tags::SERIES_DESCRIPTION).unwrap_or_default(),
        frame_of_reference_uid: root.str(tags::FRAME_OF_REFERENCE_UID),
    }))
}

/// Groups the image files among `files` by series. Files that are not DICOM
/// are skipped; non-image objects (RTSTRUCT, RTDOSE...) are not listed.
///
/// # Errors
/// A file that has the DICOM signature but cannot be parsed.
pub fn scan_series(files: &[PathBuf]) -> Result<Vec<SeriesInfo>> {
    let headers: Vec<(PathBuf, Option<Header>)> = files
        .par_iter()
        .map(|p| open_header(p).map(|h| (p.clone(), h)))
        .collect::<Result<_>>()?;
    let mut series: BTreeMap<String, SeriesInfo> = BTreeMap::new();
    for (path, h) in headers {
        let Some(h) = h else { continue };
        series
            .entry(h.series_uid.clone())
            .or_insert_with(|| SeriesInfo {
                series_uid: h.series_uid.clone(),
                study_uid: h.study_uid.clone(),
                modality: Modality::from_dicom(&h.modality),
                description: h.description.clone(),
                frame_of_reference_uid: h.frame_of_reference_uid.clone(),
                files: Vec::new(),
            })
            .files
            .push(path);
    }
    Ok(series.into_values().collect())
}

/// Reads one image series from a directory (searched recursively).
///
/// # Errors
/// See [`read_series`].
pub fn read_series_dir(
    dir: impl AsRef<Path>,
    selector: &SeriesSelector,
    options: &SeriesReadOptions,
) -> Result<Image> {
    let dir = dir.as_ref();
    let files = list_files(dir)?;
    read_series_from(&files, selector, options, &dir.display().to_string())
}

/// Reads one image series from a list of files: CT in HU (`ImageData::I16`),
/// MR as stored (ADC maps in mm^2/s), PET in Bq/mL or SUV_bw. Slices are
/// sorted along the slice normal `row x column`, which becomes the grid's
/// third axis.
///
/// # Errors
/// [`Error::NoSeries`] / [`Error::AmbiguousSeries`] for the selection;
/// [`Error::MixedOrientation`], [`Error::GantryTilt`],
/// [`Error::DuplicateSlice`], [`Error::MissingSlices`],
/// [`Error::NonUniformSpacing`] for a stack that is not a regular grid;
/// [`Error::MissingTag`] / [`Error::InvalidTag`] /
/// [`Error::SuvUnavailable`] for attributes; [`Error::DicomRead`],
/// [`Error::UnsupportedTransferSyntax`] for files.
pub fn read_series(
    files: &[PathBuf],
    selector: &SeriesSelector,
    options: &SeriesReadOptions,
) -> Result<Image> {
    read_series_from(files, selector, options, &format!("{} files", files.len()))
}

fn describe(series: &[SeriesInfo]) -> String {
    series
        .iter()
        .map(|s| {
            format!(
                "{} {} \"{}\" ({} files)",
                s.modality.as_dicom(),
                s.series_uid,
                s.description,
                s.files.len()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn read_series_from(
    files: &[PathBuf],
    selector: &SeriesSelector,
    options: &SeriesReadOptions,
    source_desc: &str,
) -> Result<Image> {
    let all = scan_series(files)?;
    let matching: Vec<&SeriesInfo> = all
        .iter()
        .filter(|s| match selector {
            SeriesSelector::Only => true,
            SeriesSelector::Uid(u) => &s.series_uid == u,
            SeriesSelector::Modality(m) => &s.modality == m,
        })
        .collect();
    let selection = match selector {
        SeriesSelector::Only => "any".to_string(),
        SeriesSelector::Uid(u) => format!("series UID {u}"),
        SeriesSelector::Modality(m) => format!("modality {}", m.as_dicom()),
    };
    let chosen = match matching.as_slice() {
        [one] => *one,
        [] => {
            return Err(Error::NoSeries {
                selection,
                source_desc: source_desc.to_string(),
                available: if all.is_empty() {
                    " (no image series found)".into()
                } else {
                    format!(" (found: {})", describe(&all))
                },
            });
        }
        many => {
            return Err(Error::AmbiguousSeries {
                selection,
                count: many.len(),
                candidates: describe(&many.iter().map(|s| (*s).clone()).collect::<Vec<_>>()),
            });
        }
    };
    assemble(chosen, options)
}

/// One decoded slice.
struct Slice {
    path: String,
    position: [f64; 3],
    orientation: [f64; 6],
    rows: usize,
    cols: usize,
    spacing: [f64; 2],
    sop_instance_uid: String,
    acquisition_s: Option<f64>,
    values: SliceValues,
}

enum SliceValues {
    Hu(Vec<i16>),
    Real(Vec<f32>),
}

fn read_slice(path: &Path, modality: &Modality) -> Result<Slice> {
    let file = DicomFile::open(path, false)?;
    let root = file.root();
    let ctx = "image plane module";
    let position: [f64; 3] = root
        .f64s_req(tags::IMAGE_POSITION_PATIENT, 3, ctx)?
        .try_into()
        .expect("three values checked");
    let orientation: [f64; 6] = root
        .f64s_req(tags::IMAGE_ORIENTATION_PATIENT, 6, ctx)?
        .try_into()
        .expect("six values checked");
    let ps = root.positive_f64s_req(tags::PIXEL_SPACING, 2, ctx, " mm")?;
    let pixels = decode_pixels(&file)?;
    if pixels.frames != 1 {
        return Err(Error::Unsupported {
            path: file.path.clone(),
            reason: format!(
                "multi-frame image ({} frames) in a slice series: enhanced multi-frame \
                 objects are not read",
                pixels.frames
            ),
        });
    }
    let slope = root.f64(tags::RESCALE_SLOPE)?.unwrap_or(1.0);
    let intercept = root.f64(tags::RESCALE_INTERCEPT)?.unwrap_or(0.0);
    let values = if *modality == Modality::Ct {
        let mut out = Vec::with_capacity(pixels.values.len());
        for (n, &v) in pixels.values.iter().enumerate() {
            let hu = (v * slope + intercept).round();
            if !(f64::from(i16::MIN)..=f64::from(i16::MAX)).contains(&hu) {
                return Err(root.invalid(
                    tags::RESCALE_SLOPE,
                    format!(
                        "pixel {n}: stored {v} x slope {slope} + intercept {intercept} = {hu} HU \
                         does not fit 16 bits"
                    ),
                ));
            }
            out.push(hu as i16);
        }
        SliceValues::Hu(out)
    } else {
        SliceValues::Real(
            pixels
                .values
                .iter()
                .map(|&v| (v * slope + intercept) as f32)
                .collect(),
        )
    };
    let acquisition_s = root
        .str(tags::ACQUISITION_TIME)
        .and_then(|t| parse_da_tm(root.str(tags::ACQUISITION_DATE).as_deref(), &t));
    Ok(Slice {
        path: file.path.clone(),
        position,
        orientation,
        rows: pixels.rows,
        cols: pixels.cols,
        spacing: [ps[0], ps[1]],
        sop_instance_uid: root.str(tags::SOP_INSTANCE_UID).unwrap_or_default(),
        acquisition_s,
        values,
    })
}

/// Checks a sorted stack and returns the slice spacing.
fn check_stack(
    series: &str,
    slices: &[Slice],
    normal: [f64; 3],
    along: &[f64],
    tol: f64,
) -> Result<f64> {
    let n = slices.len();
    // Sideways offsets: a tilted gantry shears the stack.
    for k in 1..n {
        let d = [0, 1, 2].map(|c| slices[k].position[c] - slices[0].position[c]);
        let a = dot(d, normal);
        let side = [0, 1, 2].map(|c| d[c] - a * normal[c]);
        let off = dot(side, side).sqrt();
        if off > tol {
            return Err(Error::GantryTilt {
                series: series.to_string(),
                detail: format!(
                    "slice {} is offset {off:.3} mm from the stack axis at {a:.3} mm along the \
                     normal, i.e. a tilt of {:.2} deg ({})",
                    k,
                    (off / a.abs().max(1e-9)).atan().to_degrees(),
                    slices[k].path
                ),
            });
        }
    }
    let gaps: Vec<f64> = along.windows(2).map(|w| w[1] - w[0]).collect();
    for (k, &g) in gaps.iter().enumerate() {
        if g <= tol {
            return Err(Error::DuplicateSlice {
                series: series.to_string(),
                position_mm: along[k],
                detail: format!("{} and {}", slices[k].path, slices[k + 1].path),
            });
        }
    }
    let mut sorted = gaps.clone();
    sorted.sort_by(f64::total_cmp);
    // The smallest gaps are the regular spacing (missing slices only make
    // gaps larger).
    let spacing = sorted[sorted.len() / 4];
    for (k, &g) in gaps.iter().enumerate() {
        if (g - spacing).abs() <= tol {
            continue;
        }
        let m = (g / spacing).round();
        if m >= 2.0 && (g - m * spacing).abs() <= tol * m {
            return Err(Error::MissingSlices {
                series: series.to_string(),
                missing: m as usize - 1,
                from_mm: along[k],
                to_mm: along[k + 1],
                spacing_mm: spacing,
            });
        }
        return Err(Error::NonUniformSpacing {
            what: format!("series {series}"),
            detail: format!(
                "gap of {g:.4} mm between {} and {} where the spacing is {spacing:.4} mm",
                slices[k].path,
                slices[k + 1].path
            ),
            tolerance_mm: tol,
        });
    }
    Ok((along[n - 1] - along[0]) / (n - 1) as f64)
}

fn assemble(info: &SeriesInfo, options: &SeriesReadOptions) -> Result<Image> {
    let series = info.series_uid.as_str();
    let modality = info.modality.clone();
    let mut slices: Vec<Slice> = info
        .files
        .par_iter()
        .map(|p| read_slice(p, &modality))
        .collect::<Result<_>>()?;
    let first = &slices[0];
    for s in &slices[1..] {
        let worst = (0..6)
            .map(|c| (s.orientation[c] - first.orientation[c]).abs())
            .fold(0.0, f64::max);
        if worst > options.orientation_tolerance {
            return Err(Error::MixedOrientation {
                series: series.to_string(),
                detail: format!(
                    "{} has {:?}, {} has {:?}",
                    first.path, first.orientation, s.path, s.orientation
                ),
            });
        }
        if (s.rows, s.cols) != (first.rows, first.cols) {
            return Err(Error::InvalidTag {
                path: s.path.clone(),
                tag: tag_name(tags::ROWS),
                reason: format!(
                    "{} x {} pixels, but {} has {} x {}",
                    s.rows, s.cols, first.path, first.rows, first.cols
                ),
            });
        }
        if (0..2)
            .any(|c| (s.spacing[c] - first.spacing[c]).abs() > 1e-4 * first.spacing[c].max(1.0))
        {
            return Err(Error::InvalidTag {
                path: s.path.clone(),
                tag: tag_name(tags::PIXEL_SPACING),
                reason: format!(
                    "{:?} mm, but {} has {:?} mm",
                    s.spacing, first.path, first.spacing
                ),
            });
        }
    }
    let [row_dir, col_dir, normal] = image_axes(&first.path, first.orientation)?;
    slices.sort_by(|a, b| dot(a.position, normal).total_cmp(&dot(b.position, normal)));
    let along: Vec<f64> = slices.iter().map(|s| dot(s.position, normal)).collect();
    let tol = options.position_tolerance_mm;
    let first = &slices[0];
    let dz = if slices.len() == 1 {
        let file = DicomFile::open(Path::new(&first.path), true)?;
        let root = file.root();
        match root.f64(tags::SPACING_BETWEEN_SLICES)? {
            Some(s) if s > 0.0 => s,
            _ => root.positive_f64_req(
                tags::SLICE_THICKNESS,
                "a single-slice series needs a slice thickness for its third spacing",
                " mm",
            )?,
        }
    } else {
        check_stack(series, &slices, normal, &along, tol)?
    };
    let (rows, cols) = (first.rows, first.cols);
    // PixelSpacing = (row spacing = between rows, column spacing = between
    // columns); the grid's i axis runs along a row, so it takes the second.
    let grid = Grid::with_direction(
        [cols, rows, slices.len()],
        [first.spacing[1], first.spacing[0], dz],
        first.position,
        [row_dir, col_dir, normal],
    )?;

    // Identity and units from the first file's header.
    let head = DicomFile::open(Path::new(&first.path), true)?;
    let root = head.root();
    let patient_position = match root.str(tags::PATIENT_POSITION) {
        Some(code) => Some(
            PatientPosition::from_dicom(&code)
                .map_err(|e| root.invalid(tags::PATIENT_POSITION, e.to_string()))?,
        ),
        None => None,
    };
    let mut notes = Vec::new();
    let slice_uids: Vec<String> = slices.iter().map(|s| s.sop_instance_uid.clone()).collect();
    let earliest_acq = slices
        .iter()
        .filter_map(|s| s.acquisition_s)
        .min_by(f64::total_cmp);
    let (data, units) = if modality == Modality::Ct {
        let mut all = Vec::with_capacity(grid.n_voxels());
        for s in &slices {
            match &s.values {
                SliceValues::Hu(v) => all.extend_from_slice(v),
                SliceValues::Real(_) => unreachable!("CT slices are decoded to HU"),
            }
        }
        (ImageData::I16(Volume::from_vec(grid, all)?), Units::Hu)
    } else {
        let mut all = Vec::with_capacity(grid.n_voxels());
        for s in &slices {
            match &s.values {
                SliceValues::Real(v) => all.extend_from_slice(v),
                SliceValues::Hu(_) => unreachable!("non-CT slices are decoded to reals"),
            }
        }
        let mut units = Units::AsStored;
        if modality == Modality::Pt {
            let u = root.str_req(tags::UNITS, "PET series must state their units")?;
            match options.pet_values {
                PetValues::BqPerMl => {
                    if u != "BQML" {
                        return Err(Error::InvalidTag {
                            path: root.path.to_string(),
                            tag: tag_name(tags::UNITS),
                            reason: format!(
                                "{u}: activity concentration is read from BQML series only"
                            ),
                        });
                    }
                    units = Units::BqPerMl;
                }
                PetValues::SuvBw => {
                    let (params, note) = suv_parameters(&root, earliest_acq)?;
                    let f = params.factor() as f32;
                    for v in &mut all {
                        *v *= f;
                    }
                    notes.push(format!("{note}; factor {f} mL/g applied to Bq/mL"));
                    units = Units::SuvBw;
                }
            }
        } else if modality == Modality::Mr && is_adc(&root) {
            let scale = adc_scale(options.adc_scale, &all);
            for v in &mut all {
                *v = (f64::from(*v) * scale) as f32;
            }
            notes.push(format!(
                "ADC map: stored values x {scale:e} = mm^2/s ({:?})",
                options.adc_scale
            ));
            units = Units::Mm2PerS;
        }
        (ImageData::F32(Volume::from_vec(grid, all)?), units)
    };
    Ok(Image {
        data,
        modality,
        units,
        patient_position,
        frame_of_reference_uid: root.str(tags::FRAME_OF_REFERENCE_UID),
        study_uid: root.str(tags::STUDY_INSTANCE_UID),
        series_uid: Some(series.to_string()),
        series_description: root.str(tags::SERIES_DESCRIPTION).unwrap_or_default(),
        patient: PatientInfo::read(&root),
        sop_class_uid: root.str(tags::SOP_CLASS_UID),
        slice_uids,
        notes,
    })
}

fn is_adc(root: &Item<'_>) -> bool {
    let image_type = root
        .str(tags::IMAGE_TYPE)
        .unwrap_or_default()
        .to_uppercase();
    let desc = root
        .str(tags::SERIES_DESCRIPTION)
        .unwrap_or_default()
        .to_uppercase();
    image_type.split('\\').any(|t| t == "ADC")
        || desc.contains("ADC")
        || desc.contains("APPARENT DIFFUSION")
}

/// Factor from stored ADC values to mm^2/s.
pub(crate) fn adc_scale(scale: AdcScale, values: &[f32]) -> f64 {
    match scale {
        AdcScale::MicroMm2PerS => 1e-6,
        AdcScale::MilliMm2PerS => 1e-3,
        AdcScale::Mm2PerS => 1.0,
        AdcScale::Auto => {
            let mut pos: Vec<f32> = values.iter().copied().filter(|v| *v > 0.0).collect();
            if pos.is_empty() {
                return 1.0;
            }
            let mid = pos.len() / 2;
            let median = f64::from(*pos.select_nth_unstable_by(mid, f32::total_cmp).1);
            if median > 10.0 {
                1e-6
            } else if median > 0.05 {
                1e-3
            } else {
                1.0
            }
        }
    }
}
