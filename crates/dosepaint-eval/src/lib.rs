//! # dosepaint-eval
//!
//! Judge a dose distribution the way clinicians and physicists do:
//!
//! | what | items |
//! |---|---|
//! | dose of a structure | [`DoseSample`] (voxel doses and volumes, optional fractional occupancy) |
//! | dose-volume histograms | [`Dvh`]: cumulative and differential, `V_D`, `D_x%`, `D_x cc`, D2/D50/D95/D98, ICRU 83 homogeneity index |
//! | summaries and indices | [`DoseStatistics`] (min, mean, max, Dx, HI, gEUD), [`conformity`] (Paddick, RTOG) |
//! | clinical goals as data | [`ClinicalGoal`], [`Metric`], [`evaluate_goals`], [`GoalResult`] |
//! | dose-painting quality | [`q_map`], [`PaintingParams`] -> [`PaintingAnalysis`] -> [`PaintingReport`] (QF, QVH, +-5 %, by boost level) |
//! | 3-D gamma index | [`GammaParams`] -> [`Gamma`] -> [`GammaResult`] / [`GammaPassRate`], [`resample_dose`] |
//!
//! Doses are total course doses in Gy on a core [`Volume<f32>`](dosepaint_core::Volume);
//! structures and prescriptions are core types on the same grid (resample
//! first: a mismatch is an error, never a silent resampling). gEUD comes from
//! `dosepaint-radiobio`. Conventions (what `Dx` means between bins, how the
//! last bin is treated, how gamma searches) are stated on [`Dvh`] and
//! [`Gamma`] and in `docs/evaluation.md`.
//!
//! ## Example
//! ```
//! use dosepaint_core::{Grid, Structure, StructureRole, Volume};
//! use dosepaint_eval::{ClinicalGoal, DoseStatistics, GammaParams, evaluate_goals};
//!
//! // A 40 x 40 x 20 grid of 2.5 mm voxels with a spherical PTV of radius 20 mm.
//! let grid = Grid::new([40, 40, 20], [2.5; 3], [-48.75, -48.75, -23.75])?;
//! let r = |p: [f64; 3]| p.iter().map(|c| c * c).sum::<f64>().sqrt();
//! let ptv = Structure::new("PTV", StructureRole::Target,
//!     Volume::from_fn(grid.clone(), |v| r(grid.voxel_center(v)) <= 20.0))?;
//! // 70 Gy inside, falling off outside.
//! let dose = Volume::from_fn(grid.clone(), |v| {
//!     let d = r(grid.voxel_center(v));
//!     (70.0 * (-((d - 20.0).max(0.0) / 10.0).powi(2)).exp()) as f32
//! });
//!
//! let stats = DoseStatistics::compute(&dose, &ptv, 0.01, Some(-10.0))?;
//! assert!((stats.d95_gy - 70.0).abs() < 0.01);
//! let goals: Vec<ClinicalGoal> = vec!["PTV D95 >= 66.5 Gy".parse()?];
//! assert!(evaluate_goals(&goals, &dose, &[ptv], 0.01)?[0].passed);
//!
//! // Gamma 3 %/3 mm of a copy with 1 % more dose: everything passes.
//! let gamma = GammaParams::default().check()?;
//! let result = gamma.compute(&dose, &dose.map(|d| d * 1.01))?;
//! assert_eq!(result.passed_voxels, result.evaluated_voxels);
//! # Ok::<(), dosepaint_eval::Error>(())
//! ```
//!
//! ## Errors and panics
//! Bad input — mismatched grids, empty structures, NaN or negative doses,
//! impossible parameters — is an [`Error`] naming the structure, parameter
//! or voxel; nothing panics on user input. Parameters are validated once
//! ([`GammaParams::check`], [`PaintingParams::check`], goal parsing), then
//! trusted.
#![forbid(unsafe_code)]
#![deny(clippy::float_cmp)]

mod dvh;
mod error;
mod gamma;
mod goals;
mod histogram;
mod painting;
mod sample;

pub use dvh::{Conformity, DEFAULT_BIN_WIDTH_GY, DoseStatistics, Dvh, GeudValue, conformity};
pub use error::{Error, Result};
pub use gamma::{
    Gamma, GammaMap, GammaParams, GammaPassRate, GammaResult, MAX_SEARCH_OFFSETS, Normalization,
    ResampledDose, resample_dose,
};
pub use goals::{
    ClinicalGoal, ClinicalGoals, Comparison, GoalResult, GoalUnit, Metric, evaluate_goals,
};
pub use histogram::MAX_BINS;
pub use painting::{
    MAX_LEVELS, PaintingAnalysis, PaintingParams, PaintingReport, Qvh, RegionQuality,
    prescription_levels, q_map,
};
pub use sample::DoseSample;
