//! # dosepaint
//!
//! Dose painting for radiotherapy, end to end: functional images (FDG, FMISO
//! and FLT PET, ADC maps) become a voxel-wise prescription; a photon
//! pencil-beam engine computes the dose of every beamlet; an optimizer
//! chooses beamlet weights towards the painted prescription; a leaf sequencer
//! turns each fluence map into MLC apertures; and the plan is judged with
//! DVHs, clinical goals, the dose-painting quality factor, TCP/NTCP and the
//! gamma index.
//!
//! This crate is the map of the workspace: it re-exports every layer, and
//! offers [`PlanSpec`] (a whole plan as TOML or JSON) and [`Pipeline`] (one
//! call from spec to evaluated, written plan).
//!
//! | module | crate | what it does |
//! |---|---|---|
//! | [`core`] | `dosepaint-core` | grids, volumes, structures, prescriptions, beams, apertures, the dose-influence matrix |
//! | [`radiobio`] | `dosepaint-radiobio` | LQ, BED/EQD2, OER, TCP, NTCP, gEUD |
//! | [`io`] | `dosepaint-io` | NIfTI, DICOM images, RTSTRUCT, RTDOSE, RTPLAN, REG |
//! | [`dose`] | `dosepaint-dose` | pencil-beam dose engine (`DoseEngine` trait) |
//! | [`biomap`] | `dosepaint-biomap` | images to prescriptions (`DoseMapping` trait) |
//! | [`optim`] | `dosepaint-optim` | fluence optimization (argmin solvers, `Objective` trait) |
//! | [`mlc`] | `dosepaint-mlc` | leaf sequencing |
//! | [`eval`] | `dosepaint-eval` | DVH, goals, Q/QVH, gamma |
//! | [`phantom`] | `dosepaint-phantom` | synthetic patients |
//!
//! ## Embed it in your tool
//! ```no_run
//! use dosepaint::{Pipeline, PlanSpec, PhantomCase, Progress, demo_spec};
//!
//! // The built-in head-and-neck plan (or PlanSpec::from_file("plan.toml")?).
//! let mut spec = demo_spec(PhantomCase::HeadNeck);
//! spec.outputs.dir = "out".into();
//! let result = Pipeline::new().run(&spec, &mut |p| {
//!     if let Progress::Finished(stage, secs) = p {
//!         eprintln!("{} took {secs:.1} s", stage.name());
//!     }
//! })?;
//! let q = &result.evaluation.painting.target;
//! println!("QF {:.4}, {:.1} % within 5 %", q.quality_factor, 100.0 * q.within_tolerance);
//! # Ok::<(), dosepaint::Error>(())
//! ```
//!
//! A quick, runnable example on a coarse water box:
//! ```
//! use dosepaint::{Pipeline, PhantomCase, demo_spec, spec::InputSpec};
//! let mut spec = demo_spec(PhantomCase::Box);
//! spec.inputs = InputSpec::Phantom { case: PhantomCase::Box, spacing_mm: Some([8.0; 3]) };
//! spec.dose.grid_spacing_mm = [8.0; 3];
//! spec.beams.bixel_width_mm = 10.0;
//! spec.optimizer.max_iterations = 40;
//! spec.outputs.dir = std::env::temp_dir().join("dosepaint-doc-example");
//! spec.outputs.dicom = false;
//! spec.outputs.report = false;
//! let result = Pipeline::new().run(&spec, &mut |_| {})?;
//! assert!(result.evaluation.painting.target.quality_factor < 0.1);
//! # Ok::<(), dosepaint::Error>(())
//! ```
#![forbid(unsafe_code)]

mod demos;
mod error;
mod evaluate;
mod files;
mod outputs;
mod pipeline;
mod render;
pub mod report;
pub mod spec;

pub use dosepaint_biomap as biomap;
pub use dosepaint_core as core;
pub use dosepaint_dose as dose;
pub use dosepaint_eval as eval;
pub use dosepaint_io as io;
pub use dosepaint_mlc as mlc;
pub use dosepaint_optim as optim;
pub use dosepaint_phantom as phantom;
pub use dosepaint_radiobio as radiobio;

pub use demos::demo_spec;
pub use error::{Error, Result};
pub use evaluate::{
    BeamSequencingFigures, DoseKind, DvhCurve, Evaluation, GoalOutcome, LevelComparison,
    Probability,
};
pub use outputs::Metrics;
pub use pipeline::{MatrixFigures, Patient, Pipeline, PlanResult, Progress, Stage, load};
pub use spec::{PhantomCase, PlanSpec};
