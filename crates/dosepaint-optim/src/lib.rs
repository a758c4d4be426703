//! # dosepaint-optim
//!
//! Fluence optimization towards a painted (voxel-wise) prescription: choose
//! beamlet weights `w >= 0` so that the dose `D w` of a
//! [`DoseInfluence`](dosepaint_core::DoseInfluence) follows the prescription
//! in the target while sparing organs at risk.
//!
//! | piece | what |
//! |---|---|
//! | [`Objective`] | trait for objectives on row (voxel) doses: value and gradient, composable with weights |
//! | [`SquaredDeviation`], [`DoseLimits`], [`MaxDose`], [`MinDose`], [`MeanDose`], [`DoseVolume`] | physical objectives |
//! | [`GeudLimit`], [`LogTcp`], [`Ntcp`] | biological objectives on `dosepaint-radiobio` |
//! | [`FluenceObjective`], [`FluenceSmoothness`] | objectives on the weights themselves |
//! | [`FluenceProblem`] | weighted objectives on `D w`; argmin `CostFunction` + `Gradient`; [`BoxProblem`] |
//! | [`ProjectedLbfgs`], [`ProjectedGradient`] | bound-constrained argmin [`Solver`](argmin::core::Solver)s over `Vec<f64>` |
//! | [`Constraint`] | hard constraints (augmented Lagrangian) |
//! | [`optimize`], [`Settings`], [`OptimizationResult`] | run it all with argmin's executor |
//! | `solve_exact`, `solve_exact_with_progress` (feature `lapack`) | exact solver for piecewise-quadratic plans, alone or after a few L-BFGS iterations |
//!
//! The solvers are written against argmin's core traits only (no
//! argmin-math backend), so no second `ndarray` enters the dependency graph.
//! See `docs/optimization.md` for every formula.
//!
//! ## Example
//! ```
//! use dosepaint_core::{BeamGrid, BeamletLayout, DoseInfluence, Grid, Structure, StructureRole, Volume};
//! use dosepaint_optim::{optimize, DoseLimits, FluenceProblem, Settings, SquaredDeviation};
//!
//! // Three voxels in a row, two beamlets: voxels 0-1 are target, voxel 2 an organ.
//! let grid = Grid::new([3, 1, 1], [2.0; 3], [0.0; 3])?;
//! let layout = BeamletLayout::full(
//!     vec![BeamGrid { n_rows: 1, n_cols: 2, x0_mm: 0.0, y0_mm: 0.0 }], 5.0, 5.0)?;
//! let d = DoseInfluence::from_triplets(grid.clone(), vec![0, 1, 2], layout, vec![
//!     (0, 0, 1.0), (1, 0, 0.5), (1, 1, 0.5), (2, 1, 1.0),
//! ])?;
//! let ptv = Structure::new("PTV", StructureRole::Target,
//!     Volume::from_fn(grid.clone(), |[i, _, _]| i < 2))?;
//! let oar = Structure::new("OAR", StructureRole::OrganAtRisk,
//!     Volume::from_fn(grid.clone(), |[i, _, _]| i == 2))?;
//!
//! let mut problem = FluenceProblem::new(&d)?;
//! problem.add_objective(1.0, SquaredDeviation::uniform(&d, &ptv, 60.0)?)?;
//! problem.add_objective(1.0, DoseLimits::overdose(&d, &oar, 20.0)?)?;
//! let result = optimize(&mut problem, &Settings::default(), &mut |_| {})?;
//! assert!(result.weights.iter().all(|&w| w >= 0.0));
//! assert!(result.stop_reason.is_converged());
//! # Ok::<(), dosepaint_optim::Error>(())
//! ```
#![forbid(unsafe_code)]
#![deny(clippy::float_cmp)]

/// The argmin crate this one builds on (its executor, observers and traits).
pub use argmin;

/// The user guide `docs/optimization.md`, compiled here so that its example
/// runs as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/optimization.md")]
mod guide {}

mod bounds;
mod constraint;
mod error;
#[cfg(feature = "lapack")]
mod exact;
mod objective;
mod objectives;
mod optimize;
mod problem;
mod solver;

pub use bounds::{Bounds, BoxProblem};
pub use constraint::{Constraint, ConstraintReport};
pub use error::{Error, Result};
#[cfg(feature = "lapack")]
pub use exact::{ExactSettings, solve_exact, solve_exact_with_progress};
pub use objective::{CurvatureKind, FluenceObjective, Objective, map_at_rows, structure_rows};
pub use objectives::biological::{GeudLimit, LogTcp, Ntcp, NtcpModel};
pub use objectives::fluence::FluenceSmoothness;
pub use objectives::physical::{
    Deviation, DoseLimits, DoseVolume, MaxDose, MeanDose, MinDose, Sense, SquaredDeviation,
};
pub use optimize::{IterationInfo, OptimizationResult, Settings, SolverKind, StartPoint, optimize};
pub use problem::{FluenceProblem, ObjectiveValue, PreconditionerKind};
pub use solver::{
    Preconditioner, ProjectedGradient, ProjectedLbfgs, State, StepRule, StopReason, Tolerances,
};
