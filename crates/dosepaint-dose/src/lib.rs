//! # dosepaint-dose
//!
//! The photon dose engine of dosepaint: it computes the dose each beamlet
//! (bixel) of each beam gives each voxel, as the sparse [`DoseInfluence`]
//! matrix of `dosepaint-core`, and the dose of a whole beam from a fluence
//! map with the same model.
//!
//! | item | what it is |
//! |---|---|
//! | [`HuDensityCurve`], [`PatientModel`] | CT numbers -> relative electron density; the patient on the CT grid |
//! | [`DoseRows`] | the dose grid (may be coarser than the CT) and the voxels to compute |
//! | [`beamlet_layout`], [`BeamletGridSpec`] | square bixels covering the targets' beam's-eye view |
//! | [`Machine`], [`MachineParams`] | the pencil-beam model and its serde machine file; [`Machine::generic_6mv`] |
//! | [`commission`] | fit a machine to measured PDDs and profiles (argmin Nelder-Mead) |
//! | [`DoseEngine`], [`PreparedBeam`] | object-safe engine traits; the matrix is a provided method |
//! | [`PencilBeamEngine`] | the finite-size pencil-beam implementation |
//! | [`radiological_path_mm`] | Siddon ray tracing through the density |
//!
//! Beams follow IEC 61217 through core's [`Beam::geometry`]; patient
//! positions other than HFS, HFP, FFS and FFP are refused. The model, its
//! equations, calibration and limits are described in `docs/dose-engine.md`.
//!
//! ## Example
//! ```
//! use dosepaint_core::{Beam, Grid, PatientPosition, Structure, StructureRole, Volume};
//! use dosepaint_dose::{
//!     BeamletGridSpec, DoseEngine, DoseRows, HuDensityCurve, Machine, PatientModel,
//!     PencilBeamEngine, PencilBeamOptions, beamlet_layout,
//! };
//! // A water cylinder (0 HU) in air (-1000 HU), 4 mm voxels, with a 3 cm target at the centre.
//! let ct_grid = Grid::new([50, 50, 16], [4.0; 3], [-98.0, -98.0, -30.0])?;
//! let ct = Volume::from_fn(ct_grid.clone(), |v| {
//!     let p = ct_grid.voxel_center(v);
//!     if p[0] * p[0] + p[1] * p[1] < 80.0 * 80.0 { 0.0f32 } else { -1000.0 }
//! });
//! let ptv = Structure::new("PTV", StructureRole::Target, Volume::from_fn(ct_grid.clone(), |v| {
//!     let p = ct_grid.voxel_center(v);
//!     p.iter().map(|c| c * c).sum::<f64>() < 15.0 * 15.0
//! }))?;
//! let patient = PatientModel::from_ct(&ct, &HuDensityCurve::default(), PatientPosition::HFS)?;
//! let beams: Vec<Beam> = [0.0, 120.0, 240.0]
//!     .iter()
//!     .map(|&g| Beam::new(format!("G{g}"), g, 0.0, 0.0, [0.0; 3]))
//!     .collect::<Result<_, _>>()?;
//! let layout = beamlet_layout(&beams, PatientPosition::HFS, &[&ptv], &BeamletGridSpec::default())?;
//! let rows = DoseRows::inside_patient(ct_grid.clone(), &patient, 0.5)?;
//! let engine = PencilBeamEngine::new(Machine::generic_6mv(), PencilBeamOptions::default())?;
//! let d = engine.influence(&patient, &rows, &beams, &layout)?;
//! let dose = d.dose_volume(&vec![1.0; layout.len()])?;
//! // Three beams with unit weights give roughly 3 x 0.8 Gy at 8 cm depth.
//! let centre = dose.get([24, 24, 7]).copied().unwrap();
//! assert!(centre > 1.5 && centre < 3.0, "{centre}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod beamlets;
mod commissioning;
mod density;
mod engine;
mod erf;
mod error;
mod machine;
mod pencil;
mod siddon;

pub use beamlets::{BeamletGridSpec, beamlet_layout, open_field_layout};
pub use commissioning::{
    CommissioningData, FitOptions, FitParameter, FitReport, MeasuredPdd, MeasuredProfile,
    commission,
};
pub use density::{DoseRows, HuDensityCurve, PatientModel};
pub use engine::{BeamletColumn, ColumnSink, DoseEngine, FluenceMap, PreparedBeam};
pub use erf::{ERF_MAX_ABS_ERROR, ERF_STEPS_PER_UNIT, ERF_T_MAX, erf_fast};
pub use error::{Error, Result};
pub use machine::{
    ElectronParams, Field, GENERIC_6MV_JSON, KernelPoint, Machine, MachineParams, N_COMPONENTS,
    PrimaryParams, REFERENCE_FIELD_MM, ScatterParams, SourceParams,
};
pub use pencil::{PencilBeam, PencilBeamEngine, PencilBeamOptions};
pub use siddon::radiological_path_mm;

#[doc(no_inline)]
pub use dosepaint_core::{Beam, DoseInfluence};
