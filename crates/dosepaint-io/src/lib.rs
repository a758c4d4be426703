//! # dosepaint-io
//!
//! Files in, `dosepaint-core` types out, and back. This crate converts and
//! does nothing else.
//!
//! | format | read | write |
//! |---|---|---|
//! | NIfTI-1 `.nii` / `.nii.gz` | [`read_nifti`] (u8, i16, u16, i32, f32, f64; either byte order; scaling; sform/qform/pixdim) | [`write_nifti`] |
//! | NIfTI-2 | [`read_nifti`] | - |
//! | DICOM CT / MR / PET series | [`read_series_dir`], [`read_series`] (HU, ADC in mm^2/s, Bq/mL or SUV_bw) | [`write_series`], [`write_ct_series`] |
//! | RT Structure Set | [`read_rtstruct`] -> [`Roi::rasterize`] (even-odd) | [`write_rtstruct`] (marching squares) |
//! | RT Dose | [`read_rtdose`] (16/32 bit, multi-frame, Gy) | [`write_rtdose`] |
//! | RT Plan | [`read_rtplan`] -> [`PlanBeam::to_sequence`] | [`write_rtplan`] |
//! | Spatial Registration (rigid/affine) | [`read_registration`] | [`write_registration`] |
//! | dose-influence cache | [`read_influence_cache`] | [`write_influence_cache`] |
//! | scipy `.npz` sparse matrix (matRad / pyRadPlan) | [`import_npz`] | - |
//!
//! ## Conventions at the boundary
//! - Everything inside is DICOM LPS in mm. NIfTI files are RAS: a NIfTI
//!   world point `(x, y, z)` is the LPS point `(-x, -y, z)`, converted in
//!   [`nifti`] and nowhere else.
//! - Arrays have shape `(nz, ny, nx)`, x fastest: the memory order of DICOM
//!   slices and NIfTI data, so voxel data are copied, never transposed.
//! - Doses are Gy; RT Plan meterset is MU per fraction, from per-course
//!   beamlet weights (see [`write_rtplan`]).
//! - Bad input (truncated files, missing tags, absurd headers, inconsistent
//!   geometry) is an [`Error`] naming the file and the tag, never a panic;
//!   sizes from headers are checked before anything is allocated.
//!
//! ## Example
//! ```
//! use dosepaint_core::{Grid, Volume};
//! use dosepaint_io::{NiftiReadOptions, NiftiWriteOptions, read_nifti, write_nifti};
//!
//! let dir = std::env::temp_dir().join(format!("dosepaint-io-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let grid = Grid::new([4, 3, 2], [1.0, 1.5, 2.0], [-10.0, 20.0, 5.0])?;
//! let dose = Volume::from_fn(grid.clone(), |[i, j, k]| (i + 10 * j + 100 * k) as f32);
//!
//! let path = dir.join("dose.nii.gz");
//! write_nifti(&path, &dose, &NiftiWriteOptions::default())?;
//! let back = read_nifti(&path, &NiftiReadOptions::default())?;
//! assert!(back.grid().approx_eq(&grid, 1e-4)); // same LPS placement
//! assert_eq!(back.to_f32(), dose);
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), dosepaint_io::Error>(())
//! ```
#![forbid(unsafe_code)]
#![deny(clippy::float_cmp)]

pub mod cache;
pub mod contour;
pub mod dicom;
mod endian;
mod error;
mod image;
pub mod nifti;
pub mod npz;

pub use cache::{CACHE_VERSION, read_influence_cache, write_influence_cache};
pub use dicom::{
    AdcScale, Contour, ContourKind, DecayCorrection, DoseSummation, PatientInfo, PetAcquisition,
    PetValues, PlanBeam, ReferencedSeries, RegisteredFrame, Registration, Roi, RoiToWrite, RtDose,
    RtDoseReadOptions, RtDoseWriteOptions, RtPlan, RtPlanToWrite, RtStruct, RtStructWriteOptions,
    SeriesInfo, SeriesReadOptions, SeriesSelector, SeriesWriteOptions, SuvParameters, WriteSyntax,
    WrittenSeries, list_files, read_registration, read_rtdose, read_rtplan, read_rtstruct,
    read_series, read_series_dir, scan_series, write_ct_series, write_registration, write_rtdose,
    write_rtplan, write_rtstruct, write_series,
};
pub use error::{Error, Result};
pub use image::{Image, ImageData, Modality, Units};
pub use nifti::{
    NiftiData, NiftiDatatype, NiftiElement, NiftiImage, NiftiReadOptions, NiftiWriteOptions,
    SpatialSource, read_nifti, write_nifti,
};
pub use npz::{VoxelOrder, import_npz, linear_to_matrad, matrad_to_linear};
