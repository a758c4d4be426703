//! # dosepaint-phantom
//!
//! Synthetic patients with fixed geometry and fixed noise seeds, for tests,
//! benchmarks and demonstrations of the dosepaint workspace. Nothing here is
//! meant for production planning paths.
//!
//! | builder | what it is |
//! |---|---|
//! | [`water_box`] | a water box in air with one box- or ellipsoid-shaped target |
//! | [`tg119`], [`tg119_with_spacing`] | the AAPM TG-119 C-shape around a central core (50 Gy / 25 fx, 9 beams) |
//! | [`head_neck`], [`head_neck_with_spacing`], [`head_neck_with`] | an oropharyngeal case with bone, air, parotids, cord, a hypoxic subvolume and FDG/FMISO/FLT/ADC maps (70-84 Gy painted / 35 fx) |
//!
//! Helpers: [`head_neck_reference_prescription`] (the intended FMISO-guided
//! linear dose painting as a core `Prescription`), [`gaussian_blur`]
//! (separable, anisotropic partial-volume blur), [`SplitMix64`] (the seeded
//! generator behind every texture and noise sample).
//!
//! Each returns a [`Phantom`]: CT in HU, structures with roles, functional
//! images (where the case has them), a suggested isocentre and beams, and the
//! intended prescription as data ([`PrescriptionIntent`]). All volumes share
//! the CT grid; coordinates are DICOM LPS in mm (x to the patient's left, y
//! posterior, z superior), patient head-first supine.
//!
//! ## Example
//! ```
//! use dosepaint_phantom::tg119_with_spacing;
//!
//! // A coarse TG-119 for a fast test.
//! let p = tg119_with_spacing([5.0, 5.0, 5.0])?;
//! let ptv = p.structure("PTV")?;
//! let core = p.structure("Core")?;
//! assert!(core.intersection(ptv)?.is_empty());
//! assert_eq!(p.intent.fractions, 25);
//! assert_eq!(p.beams.len(), 9);
//! // The intended prescription as a core `Prescription` map.
//! let rx = p.uniform_prescription()?;
//! assert_eq!(rx.prescribed_voxels().len(), ptv.voxel_count());
//!
//! // The head-and-neck case: FMISO-guided painting from 70 to 84 Gy.
//! let hn = dosepaint_phantom::head_neck_with_spacing([4.0, 4.0, 4.0])?;
//! let tbr = hn.image(dosepaint_phantom::ImageKind::FmisoTbr)?;
//! assert_eq!(tbr.grid(), hn.grid());
//! let painted = dosepaint_phantom::head_neck_reference_prescription(&hn)?;
//! assert_eq!(painted.fractions(), 35);
//! assert!(painted.target_gy().stats().max > 83.9);
//! # Ok::<(), dosepaint_phantom::Error>(())
//! ```
#![forbid(unsafe_code)]

mod blur;
mod error;
mod geometry;
mod head_neck;
mod phantom;
mod prescription;
mod rng;
mod tg119;
mod water_box;

pub use blur::{fwhm_to_sigma, gaussian_blur};
pub use head_neck::{
    HEAD_NECK_BASE_DOSE_GY, HEAD_NECK_BOOST_DOSE_GY, HEAD_NECK_EXTENT_MM, HEAD_NECK_FMISO_HIGH,
    HEAD_NECK_FMISO_LOW, HEAD_NECK_FRACTIONS, HEAD_NECK_SEED, HEAD_NECK_SPACING_MM, HeadNeckParams,
    head_neck, head_neck_with, head_neck_with_spacing,
};
pub use prescription::{head_neck_reference_prescription, linear_dpbn_gy};
pub use rng::SplitMix64;

pub use error::{Error, Result};
pub use geometry::{MAX_PHANTOM_VOXELS, centroid_mm, equispaced_angles};
pub use phantom::{
    DoseGoal, FunctionalImages, GoalKind, GoalMetric, ImageKind, PaintingIntent, Phantom,
    PrescriptionIntent,
};
pub use tg119::{
    TG119_BODY_MM, TG119_C_HALF_LENGTH_MM, TG119_C_INNER_RADIUS_MM, TG119_C_OPENING_HALF_ANGLE_DEG,
    TG119_C_OUTER_RADIUS_MM, TG119_CORE_HALF_LENGTH_MM, TG119_CORE_RADIUS_MM, TG119_DOSE_GY,
    TG119_EXTENT_MM, TG119_FRACTIONS, TG119_SPACING_MM, tg119, tg119_with_spacing,
};
pub use water_box::{TargetShape, WaterBoxParams, water_box};
