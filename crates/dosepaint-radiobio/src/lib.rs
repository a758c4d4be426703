//! # dosepaint-radiobio
//!
//! Linear-quadratic (LQ) radiobiology for radiotherapy planning and evaluation:
//! cell survival, BED, EQD2 and iso-effective schedules, overall-time repopulation,
//! phased schedules (sequential boost vs simultaneous integrated boost), the oxygen
//! effect, genomic-adjusted radiation dose (GARD), Poisson and population tumour
//! control probability (TCP), normal tissue complication probability (NTCP: LKB,
//! logit, relative seriality) and Niemierko's gEUD, each with its derivative with
//! respect to voxel dose where an optimizer needs it, and a small library of
//! published parameter sets as serde data.
//!
//! The crate depends on no other workspace crate: doses come in as `&[f64]` slices
//! of **total course dose** in Gy with the number of fractions alongside (the dose
//! per fraction `d = D / n` is derived where LQ needs it), and relative volumes or
//! weights as `&[f64]` ([`Weights`]); per-voxel maps that may also be uniform are
//! [`VoxelValues`].
//!
//! ```
//! use dosepaint_radiobio::{AlphaBeta, Fractionation};
//!
//! // 60 Gy in 20 fractions (3 Gy per fraction), late-responding tissue (alpha/beta 3 Gy).
//! let schedule = Fractionation::new(60.0, 20)?;
//! let ab = AlphaBeta::new(3.0)?;
//! assert!((schedule.bed(ab) - 120.0).abs() < 1e-9);
//! assert!((schedule.eqd2(ab) - 72.0).abs() < 1e-9); // EQD2 = 120 / (1 + 2/3) = 72 Gy
//!
//! // The same thing with the free function.
//! let eqd2 = dosepaint_radiobio::eqd2(60.0, 20, 3.0)?;
//! assert!((eqd2 - 72.0).abs() < 1e-9);
//! # Ok::<(), dosepaint_radiobio::Error>(())
//! ```
//!
//! An optimizer objective: the LKB NTCP of the parotid and its gradient.
//!
//! ```
//! use dosepaint_radiobio::{Lkb, ParameterLibrary};
//! let parotid = ParameterLibrary::builtin().lkb("quantec_parotid_xerostomia")?;
//! let doses = vec![20.0, 26.0, 32.0];
//! let volumes = vec![1.0, 1.0, 1.0];
//! let mut grad = vec![0.0; 3];
//! let ntcp = parotid.ntcp_and_gradient(&doses, &volumes, &mut grad)?;
//! assert!((ntcp - 0.192).abs() < 0.002); // mean dose 26 Gy
//! # Ok::<(), dosepaint_radiobio::Error>(())
//! ```
//!
//! ## Modules at a glance
//! | what | items |
//! |---|---|
//! | LQ, BED, EQD2, iso-effect | [`LqParams`], [`AlphaBeta`], [`Fractionation`], [`bed`], [`eqd2`], [`isoeffective_total_dose`], [`bed_map`], [`eqd2_map_with_derivative`], [`dose_for_log_cell_kill`] |
//! | time factor and phases | [`Repopulation`], [`effective_bed`], [`Schedule`], [`compare_sequential_and_sib`] |
//! | oxygen, genomics | [`OerModel`], [`Gard`] |
//! | gEUD | [`Geud`] |
//! | TCP | [`PoissonTcp`], [`PopulationTcp`], [`TcpPopulationParams`] |
//! | NTCP | [`Lkb`], [`LogitNtcp`], [`RelativeSeriality`] |
//! | parameter sets | [`ParameterLibrary`], [`ParameterSet`], [`ModelParameters`] |
//!
//! ## Errors and panics
//! Parameters are validated once, at construction (or while being deserialised);
//! per-voxel inputs (doses, weights, maps) are validated on every call, fused into
//! the computing loop. Any invalid input — NaN, a negative dose, zero fractions,
//! alpha/beta <= 0, weights that do not sum to a positive number, mismatched slice
//! lengths — returns an [`Error`] that names the parameter and, for per-voxel
//! inputs, the first offending voxel. Nothing panics on user input.
//!
//! ## Determinism and speed
//! Whole-distribution routines run in parallel (rayon) over fixed chunks of voxels
//! and combine partial sums in chunk order, so results are bit-for-bit identical
//! for any number of threads. gEUD, LKB NTCP and log-TCP use one transcendental
//! function per voxel, shared between the value and the gradient.
//!
//! The models, their assumptions and references are described in
//! `docs/radiobiology.md` of the workspace.

#![forbid(unsafe_code)]
#![deny(clippy::float_cmp)]

mod error;
mod gard;
mod geud;
mod library;
mod lq;
mod ntcp;
mod oxygen;
mod repopulation;
mod schedule;
mod tcp;
mod voxel;

pub use error::{Error, Result};
pub use gard::{GARD_BETA_PER_GY2, Gard};
pub use geud::Geud;
pub use library::{ModelParameters, ParameterLibrary, ParameterSet};
pub use lq::{
    AlphaBeta, Fractionation, LqParams, bed, bed_map, dose_for_log_cell_kill, eqd2, eqd2_map,
    eqd2_map_with_derivative, eqdx, isoeffective_total_dose, ln_survival, survival_fraction,
    survival_map, to_bed, to_eqd2, weekday_overall_time_days,
};
pub use ntcp::{Lkb, LogitNtcp, RelativeSeriality, standard_normal_cdf, standard_normal_pdf};
pub use oxygen::OerModel;
pub use repopulation::{Repopulation, effective_bed, isoeffective_total_dose_with_time};
pub use schedule::{
    BoostComparison, BoostPlan, Phase, RegionEffect, Schedule, compare_sequential_and_sib,
};
pub use tcp::{PoissonTcp, PopulationQuadrature, PopulationTcp, TcpPopulationParams, TcpVoxelData};
pub use voxel::{VoxelValues, Weights};
