//! Plain projected gradient (the baseline) as an argmin solver.

use argmin::core::{KV, Problem, Solver, TerminationStatus};
use argmin::kv;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::bounds::BoxProblem;
use crate::solver::iterate::Iterate;
use crate::solver::line_search::LineSearch;
use crate::solver::preconditioner::Preconditioner;
use crate::solver::{Progress, State, StopReason, Tolerances, Tracked};

/// How [`ProjectedGradient`] picks its first trial step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepRule {
    /// Twice the last accepted step (plain backtracking).
    Backtracking,
    /// The Barzilai-Borwein step `s^T s / s^T y` (spectral projected
    /// gradient, Birgin, Martinez & Raydan, SIAM J Optim 10:1196, 2000),
    /// still with a monotone Armijo search.
    BarzilaiBorwein,
}

/// Projected gradient descent: `x <- P(x - alpha P g)` with a projected
/// Armijo line search along the projection arc; `P` an optional diagonal
/// preconditioner. The baseline the quasi-Newton solver is compared with.
#[derive(Debug, Clone)]
pub struct ProjectedGradient {
    tolerances: Tolerances,
    line_search: LineSearch,
    rule: StepRule,
    preconditioner: Option<Preconditioner>,
    iterate: Iterate,
    alpha: f64,
}

impl Default for ProjectedGradient {
    fn default() -> Self {
        Self::new()
    }
}

impl ProjectedGradient {
    /// Barzilai-Borwein trial steps, default tolerances, no preconditioner.
    pub fn new() -> Self {
        Self {
            tolerances: Tolerances::default(),
            line_search: LineSearch::default(),
            rule: StepRule::BarzilaiBorwein,
            preconditioner: None,
            iterate: Iterate::default(),
            alpha: 1.0,
        }
    }

    /// The rule for the first trial step.
    #[must_use]
    pub fn with_step_rule(mut self, rule: StepRule) -> Self {
        self.rule = rule;
        self
    }

    /// Convergence tolerances.
    ///
    /// # Errors
    /// A negative or non-finite tolerance.
    pub fn with_tolerances(mut self, tolerances: Tolerances) -> Result<Self> {
        tolerances.validate()?;
        self.tolerances = tolerances;
        Ok(self)
    }

    /// A preconditioner (inverse Hessian estimate); the projected-gradient
    /// step uses its diagonal `p`: `-alpha diag(p) g`.
    #[must_use]
    pub fn with_preconditioner(mut self, preconditioner: Preconditioner) -> Self {
        self.preconditioner = Some(preconditioner);
        self
    }

    /// The objective value after every iteration (index 0: the start).
    pub fn history(&self) -> &[f64] {
        self.progress().history()
    }

    /// Objective-and-gradient evaluations so far.
    pub fn evaluations(&self) -> u64 {
        self.progress().evaluations()
    }

    /// Why the solver asked to stop, if it did.
    pub fn stop_reason(&self) -> Option<&StopReason> {
        self.progress().stop_reason()
    }

    /// The last projected-gradient norm.
    pub fn projected_gradient_norm(&self) -> f64 {
        self.progress().projected_gradient_norm()
    }

    fn precond(&self, j: usize) -> f64 {
        Preconditioner::diagonal_or_one(self.preconditioner.as_ref(), j)
    }
}

impl Tracked for ProjectedGradient {
    fn progress(&self) -> &Progress {
        &self.iterate.progress
    }
}

impl<O: BoxProblem> Solver<O, State> for ProjectedGradient {
    fn name(&self) -> &'static str {
        "projected gradient"
    }

    fn init(
        &mut self,
        problem: &mut Problem<O>,
        mut state: State,
    ) -> Result<(State, Option<KV>), argmin::core::Error> {
        let preconditioner = self.preconditioner.as_ref();
        self.iterate.start(problem, &mut state, preconditioner)?;
        self.alpha = self.iterate.initial_step_scale(preconditioner.is_some());
        Ok((self.iterate.report(state), None))
    }

    fn next_iter(
        &mut self,
        problem: &mut Problem<O>,
        state: State,
    ) -> Result<(State, Option<KV>), argmin::core::Error> {
        let bounds = self.iterate.take_bounds()?;
        // Only the diagonal of the preconditioner: with a non-diagonal
        // metric a projected step need not descend (that needs the
        // two-metric treatment of ProjectedLbfgs).
        for j in 0..self.iterate.x.len() {
            self.iterate.d[j] = -self.precond(j) * self.iterate.g[j];
        }
        let (accepted, trials) =
            self.iterate
                .search_arc(&self.line_search, problem, &bounds, self.alpha)?;
        self.iterate.progress.evaluations += u64::from(trials);
        let Some(step) = accepted else {
            self.iterate.reject(bounds);
            return Ok((state, None));
        };
        // Next trial step.
        self.alpha = match self.rule {
            StepRule::Backtracking => 2.0 * step.alpha,
            StepRule::BarzilaiBorwein => {
                // BB2 in the (diagonal) preconditioned metric: s^T y / y^T P y.
                let Iterate { x, g, xt, gt, .. } = &self.iterate;
                let mut sy = 0.0;
                let mut ypy = 0.0;
                for j in 0..x.len() {
                    let y = gt[j] - g[j];
                    let p = self.precond(j);
                    sy += (xt[j] - x[j]) * y;
                    ypy += y * p * y;
                }
                if sy > 0.0 && ypy > 0.0 {
                    sy / ypy
                } else {
                    2.0 * step.alpha
                }
            }
        };
        let pg = self.iterate.accept(bounds, step.f, &self.tolerances);
        Ok((
            self.iterate.report(state),
            Some(
                kv!("alpha" => step.alpha; "trials" => step.trials; "projected_gradient_norm" => pg;),
            ),
        ))
    }

    fn terminate(&mut self, _state: &State) -> TerminationStatus {
        self.progress().termination()
    }
}
