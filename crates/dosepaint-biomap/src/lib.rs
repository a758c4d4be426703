//! # dosepaint-biomap
//!
//! From functional images (FDG, FMISO and FLT PET, ADC maps from diffusion
//! MRI) to a voxel-wise dose-painting prescription: core's
//! [`Prescription`](dosepaint_core::Prescription), which the optimizer and the
//! evaluation crate consume without depending on this crate.
//!
//! | what | items |
//! |---|---|
//! | the plug-in trait | [`DoseMapping`] (whole volumes in, a prescription out), [`VoxelFn`] (a per-voxel function as a mapping), [`MappingInputs`] |
//! | serialisable specs | [`MappingSpec`] (every built-in mapping, tagged by `kind`), [`ImageSource`], [`Level`] |
//! | image preparation | [`region_stats`], [`suv_max`], [`suv_peak`], [`tumour_to_background`], [`z_score`], [`adc_to_mm2_per_s`], [`gaussian_smooth`], [`resample_to_grid`] |
//! | painting by contours | [`ContourSpec`], [`ThresholdRule`], [`connected_components`], [`remove_small_components`], [`sib_doses`] |
//! | painting by numbers | [`LinearSpec`] (Bentzen 2005), [`SigmoidSpec`], [`PiecewiseSpec`], [`RiskMapSpec`] |
//! | radiobiological | [`IsoEffectSpec`] with [`OxygenSpec`] ([`Po2Model`], [`HypoxicModifier`]), [`DensitySpec`], [`ProliferationSpec`] |
//! | combinations | [`MaxOf`], [`WeightedSum`], [`Redistribute`], [`PatientAdjusted`], [`Bounded`] |
//! | after mapping | [`prescription_eqd2`], [`prescription_bed`], [`represcribe`] (adaptive) |
//!
//! Every LQ and OER formula comes from `dosepaint-radiobio`. Images arrive on
//! the planning grid (use [`MappingInputs::with_image_resampled`] to bring one
//! from another grid or frame of reference). Total course doses in Gy with the
//! number of fractions alongside, as everywhere in dosepaint. The strategies,
//! their formulas and their sources are in `docs/dose-painting.md`.
//!
//! ## Example
//! Dose painting by numbers from FMISO (tumour-to-blood ratio 1.2 -> 70 Gy,
//! 2.0 -> 84 Gy in the GTV, 70 Gy in the rest of the PTV, 35 fractions)
//! combined, voxel by voxel, with an FDG contour boost (50 % of SUVmax ->
//! 77 Gy):
//!
//! ```
//! use dosepaint_biomap::*;
//! use dosepaint_core::{Grid, Structure, StructureRole, Volume};
//!
//! // A 4 mm grid with a spherical GTV (r = 20 mm) inside a PTV (r = 28 mm),
//! // a blood-pool region, and synthetic FDG and FMISO images.
//! let grid = Grid::new([24, 24, 16], [4.0; 3], [-46.0, -46.0, -30.0])?;
//! let r = |v: [usize; 3]| {
//!     let p = grid.voxel_center(v);
//!     (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt()
//! };
//! let sphere = |name: &str, radius: f64| {
//!     Structure::new(name, StructureRole::Target, Volume::from_fn(grid.clone(), |v| r(v) <= radius))
//! };
//! let blood = Structure::new("aorta", StructureRole::Other,
//!     Volume::from_fn(grid.clone(), |[i, j, _]| i < 3 && j < 3))?;
//! let fdg = Volume::from_fn(grid.clone(), |v| (12.0 - 0.5 * r(v)).max(1.0) as f32);
//! let fmiso = Volume::from_fn(grid.clone(), |v| (2.4 - 0.08 * r(v)).max(1.0) as f32);
//!
//! let inputs = MappingInputs::new(sphere("GTV", 20.0)?, 35)?
//!     .with_base_region(sphere("PTV", 28.0)?)?
//!     .with_region("blood", blood)?
//!     .with_image("fdg", fdg)?
//!     .with_image("fmiso", fmiso)?;
//!
//! let spec = MappingSpec::Max(MaxSpec { mappings: vec![
//!     MappingSpec::Linear(
//!         LinearSpec::new(ImageSource::new("fmiso").ratio_to("blood"), 1.2, 2.0, 70.0, 84.0)
//!             .with_base_dose(70.0)),
//!     MappingSpec::Contours(ContourSpec::new(70.0, vec![ContourLevelSpec::new(
//!         "BTV_FDG50", ImageSource::new("fdg"), ThresholdRule::FractionOfMax(0.5), 77.0)])),
//! ]});
//! let out = spec.build()?.map_with_report(&inputs)?;
//! let rx = &out.prescription;
//!
//! let centre = grid.linear_index([11, 11, 7]);
//! assert!(rx.target_gy().as_slice()[centre] > 80.0);           // hypoxic core
//! let rim = grid.linear_index([11, 11, 2]);                      // PTV, outside the GTV
//! assert_eq!(rx.target_gy().as_slice()[rim], 70.0);
//! assert_eq!(out.report.structures[0].name(), "BTV_FDG50");     // for RTSTRUCT
//! // The provenance holds the spec: the prescription can be reproduced exactly.
//! assert_eq!(MappingSpec::from_provenance(rx)?, spec);
//! // Per-voxel EQD2 (alpha/beta 10 Gy).
//! let eqd2 = prescription_eqd2(rx, &AlphaBetaMap::Uniform(10.0))?;
//! assert!(eqd2.as_slice()[centre] > rx.target_gy().as_slice()[centre]);
//! # Ok::<(), dosepaint_biomap::Error>(())
//! ```
//!
//! ## Errors and panics
//! Parameters are validated once, when a spec is built; images and structures
//! when they are added to the [`MappingInputs`] (grid, NaN). Anything wrong in
//! user input is an [`Error`] naming the parameter, image, region or voxel;
//! nothing panics on user input, and nothing is clamped silently: every floor,
//! cap or model saturation is counted in the [`MappingReport`].
#![forbid(unsafe_code)]
#![deny(clippy::float_cmp)]

mod adaptive;
mod combine;
mod contours;
mod error;
mod image;
mod inputs;
mod mapping;
mod morphology;
mod numbers;
mod radiobiological;
mod smooth;
mod spec;

pub use adaptive::{
    Adaptation, AlphaBetaMap, Delivered, ExceededVoxel, ExcessPolicy, prescription_bed,
    prescription_eqd2, represcribe, represcribe_from_image,
};
pub use combine::{
    Bounded, BoundedSpec, Conserve, MaxOf, MaxSpec, PatientAdjusted, PatientRadiosensitivity,
    PatientSpec, Redistribute, RedistributeSpec, Rescale, UniformSpec, WeightedComponent,
    WeightedSpec, WeightedSum,
};
pub use contours::{ContourLevelSpec, ContourSpec, SibLevel, ThresholdRule, sib_doses};
pub use error::{Error, Result};
pub use image::{
    ADC_MAX_PLAUSIBLE_MM2_PER_S, AdcUnit, ImageSource, Level, Mm3, Normalization,
    ReferenceStatistic, RegionStats, SuvPeak, TargetStatistic, adc_to_mm2_per_s, region_stats,
    suv_max, suv_peak, tumour_to_background, z_score,
};
pub use inputs::{BASE, MappingInputs, OutsideSource, Resampled, TARGET, resample_to_grid};
pub use mapping::{
    Adjustment, AdjustmentKind, DoseMap, DoseMapping, MappingOutput, MappingReport, Voxel, VoxelFn,
};
pub use morphology::{Components, Connectivity, connected_components, remove_small_components};
pub use numbers::{
    LinearSpec, PiecewiseSpec, RiskComponent, RiskMapSpec, SigmoidSpec, linear_dose,
    piecewise_dose, sigmoid_dose,
};
pub use radiobiological::{
    ADC_FREE_WATER_MM2_PER_S, DensitySpec, HypoxicModifier, IsoEffectSpec, OxygenSpec, Po2Model,
    Po2Saturation, ProliferationSpec, VoxelLqSpec, clonogen_density,
};
pub use smooth::{FWHM_PER_SIGMA, gaussian_smooth};
pub use spec::MappingSpec;
