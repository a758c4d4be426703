//! Bound-constrained solvers as argmin [`Solver`](argmin::core::Solver)s:
//! projected L-BFGS with a projected line search, and a plain projected
//! gradient baseline. Both work on any [`BoxProblem`](crate::BoxProblem) over
//! `Vec<f64>` and do not need argmin-math.

mod iterate;
mod lbfgs;
mod line_search;
mod preconditioner;
mod projected_gradient;

pub use lbfgs::ProjectedLbfgs;
pub use preconditioner::Preconditioner;
pub use projected_gradient::{ProjectedGradient, StepRule};

use argmin::core::{TerminationReason, TerminationStatus};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// argmin iteration state of the solvers: parameters and gradient are
/// `Vec<f64>`, cost `f64`.
pub type State = argmin::core::IterState<Vec<f64>, Vec<f64>, (), (), (), f64>;

/// Convergence tests of the solvers (the iteration and time limits are the
/// executor's: `max_iters` and `timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tolerances {
    /// Stop when `||P(w - g) - w||_inf` falls below this fraction of its
    /// value at the start point.
    pub projected_gradient_relative: f64,
    /// Stop when `||P(w - g) - w||_inf` falls below this absolute value.
    pub projected_gradient_absolute: f64,
    /// Stop when the relative decrease `(F_k - F_k+1) / max(|F_k|, |F_k+1|)`
    /// stays below this for `patience` consecutive iterations.
    pub relative_objective_change: f64,
    /// See `relative_objective_change`.
    pub patience: u32,
}

impl Default for Tolerances {
    fn default() -> Self {
        Self {
            projected_gradient_relative: 1e-7,
            projected_gradient_absolute: 0.0,
            relative_objective_change: 1e-10,
            patience: 3,
        }
    }
}

impl Tolerances {
    /// Checks that every tolerance is finite and non-negative.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the tolerance.
    pub fn validate(&self) -> Result<()> {
        for (what, v) in [
            (
                "relative projected-gradient tolerance",
                self.projected_gradient_relative,
            ),
            (
                "absolute projected-gradient tolerance",
                self.projected_gradient_absolute,
            ),
            (
                "relative objective-change tolerance",
                self.relative_objective_change,
            ),
        ] {
            crate::error::non_negative(what, v)?;
        }
        Ok(())
    }
}

/// Why a solver stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StopReason {
    /// The projected-gradient norm fell below its tolerance (a KKT point).
    ProjectedGradient,
    /// The objective stopped decreasing (relative change below tolerance).
    ObjectiveChange,
    /// The iteration limit was reached.
    MaxIterations,
    /// The time limit was reached.
    TimeLimit,
    /// No step along the projected search path decreased the objective:
    /// the solver is at the limit of floating-point precision.
    LineSearchFailed,
    /// The target objective value was reached.
    TargetCost,
    /// Interrupted from outside (Ctrl-C).
    Interrupted,
    /// Anything else (a user solver's own reason).
    Other(String),
}

pub(crate) const MSG_PG: &str = "projected-gradient norm below tolerance";
pub(crate) const MSG_F: &str = "relative objective change below tolerance";
pub(crate) const MSG_LS: &str = "line search found no decrease";

impl StopReason {
    /// From argmin's termination status.
    pub fn from_argmin(status: &TerminationStatus) -> Self {
        match status {
            TerminationStatus::NotTerminated => Self::Other("not terminated".into()),
            TerminationStatus::Terminated(r) => match r {
                TerminationReason::MaxItersReached => Self::MaxIterations,
                TerminationReason::TargetCostReached => Self::TargetCost,
                TerminationReason::Interrupt => Self::Interrupted,
                TerminationReason::Timeout => Self::TimeLimit,
                TerminationReason::SolverConverged => Self::ProjectedGradient,
                TerminationReason::SolverExit(s) => match s.as_str() {
                    MSG_PG => Self::ProjectedGradient,
                    MSG_F => Self::ObjectiveChange,
                    MSG_LS => Self::LineSearchFailed,
                    other => Self::Other(other.to_string()),
                },
            },
        }
    }

    /// Whether this counts as convergence (not a limit).
    pub fn is_converged(&self) -> bool {
        matches!(
            self,
            Self::ProjectedGradient
                | Self::ObjectiveChange
                | Self::LineSearchFailed
                | Self::TargetCost
        )
    }

    pub(crate) fn status(&self) -> TerminationStatus {
        let msg = match self {
            Self::ProjectedGradient => MSG_PG,
            Self::ObjectiveChange => MSG_F,
            Self::LineSearchFailed => MSG_LS,
            _ => return TerminationStatus::NotTerminated,
        };
        TerminationStatus::Terminated(TerminationReason::SolverExit(msg.into()))
    }
}

/// Convergence bookkeeping shared by the solvers, and what they report
/// through their public accessors.
#[derive(Debug, Clone, Default)]
pub(crate) struct Progress {
    pub(crate) pg0: f64,
    pub(crate) pg: f64,
    pub(crate) small_changes: u32,
    pub(crate) stop: Option<StopReason>,
    pub(crate) history: Vec<f64>,
    pub(crate) evaluations: u64,
}

impl Progress {
    /// The objective value after every iteration (index 0: the start).
    pub(crate) fn history(&self) -> &[f64] {
        &self.history
    }

    /// Objective-and-gradient evaluations so far.
    pub(crate) fn evaluations(&self) -> u64 {
        self.evaluations
    }

    /// Why the solver asked to stop, if it did.
    pub(crate) fn stop_reason(&self) -> Option<&StopReason> {
        self.stop.as_ref()
    }

    /// The last projected-gradient norm `||P(x - g) - x||_inf`.
    pub(crate) fn projected_gradient_norm(&self) -> f64 {
        self.pg
    }

    /// argmin's view of [`Progress::stop_reason`].
    pub(crate) fn termination(&self) -> TerminationStatus {
        self.stop
            .as_ref()
            .map_or(TerminationStatus::NotTerminated, StopReason::status)
    }

    pub(crate) fn start(&mut self, f: f64, pg: f64) {
        self.pg0 = pg;
        self.pg = pg;
        self.small_changes = 0;
        self.stop = None;
        self.history.clear();
        self.history.push(f);
    }

    /// Records an accepted step and applies the convergence tests.
    pub(crate) fn step(&mut self, tol: &Tolerances, f_old: f64, f_new: f64, pg: f64) {
        self.pg = pg;
        self.history.push(f_new);
        if pg <= tol.projected_gradient_absolute || pg <= tol.projected_gradient_relative * self.pg0
        {
            self.stop = Some(StopReason::ProjectedGradient);
            return;
        }
        let scale = f_old.abs().max(f_new.abs()).max(f64::MIN_POSITIVE);
        if (f_old - f_new) / scale <= tol.relative_objective_change {
            self.small_changes += 1;
            if self.small_changes >= tol.patience.max(1) {
                self.stop = Some(StopReason::ObjectiveChange);
            }
        } else {
            self.small_changes = 0;
        }
    }
}

/// Read access to a solver's [`Progress`] (for [`optimize`](crate::optimize)).
pub(crate) trait Tracked {
    fn progress(&self) -> &Progress;
}

pub(crate) fn missing_param() -> argmin::core::Error {
    Error::invalid(
        "initial weights",
        "the executor state holds no initial parameter vector (configure it with state.param(w0))",
    )
    .into()
}

pub(crate) fn check_initial(
    bounds: &crate::Bounds,
    x: &mut [f64],
) -> Result<(), argmin::core::Error> {
    if x.len() != bounds.len() {
        return Err(Error::length("initial weights", bounds.len(), x.len()).into());
    }
    if let Some(j) = x.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            context: "initial weights".into(),
            location: format!("variable {j}"),
        }
        .into());
    }
    if let Some((j, v)) = bounds.first_violation(x) {
        return Err(Error::invalid(
            "initial weights",
            format!(
                "variable {j} = {v} lies outside its bounds [{}, {}]",
                bounds.lower()[j],
                bounds.upper()[j]
            ),
        )
        .into());
    }
    Ok(())
}

pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
