//! Plain projected gradient (the baseline) as an argmin solver.

use argmin::core::{KV, Problem, Solver, TerminationStatus};
use argmin::kv;
use serde::{Deserialize, Serialize};

use crate::Bounds;
use crate::bounds::BoxProblem;
use crate::solver::line_search::{LineSearch, pg_norm};
use crate::solver::preconditioner::Preconditioner;
use crate::solver::{Progress, State, StopReason, Tolerances, check_initial, missing_param};
use crate::{Error, Result};

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
    bounds: Option<Bounds>,
    x: Vec<f64>,
    g: Vec<f64>,
    d: Vec<f64>,
    xt: Vec<f64>,
    gt: Vec<f64>,
    f: f64,
    alpha: f64,
    progress: Progress,
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
            bounds: None,
            x: Vec::new(),
            g: Vec::new(),
            d: Vec::new(),
            xt: Vec::new(),
            gt: Vec::new(),
            f: f64::INFINITY,
            alpha: 1.0,
            progress: Progress::default(),
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
        &self.progress.history
    }

    /// Objective-and-gradient evaluations so far.
    pub fn evaluations(&self) -> u64 {
        self.progress.evaluations
    }

    /// Why the solver asked to stop, if it did.
    pub fn stop_reason(&self) -> Option<&StopReason> {
        self.progress.stop.as_ref()
    }

    /// The last projected-gradient norm.
    pub fn projected_gradient_norm(&self) -> f64 {
        self.progress.pg
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
        let bounds = problem.problem("bounds", |p| Ok(p.bounds().clone()))?;
        let mut x = state.take_param().ok_or_else(missing_param)?;
        check_initial(&bounds, &mut x)?;
        let n = x.len();
        if let Some(p) = &self.preconditioner
            && p.len() != n
        {
            return Err(Error::length("preconditioner", n, p.len()).into());
        }
        self.g = vec![0.0; n];
        self.d = vec![0.0; n];
        self.xt = vec![0.0; n];
        self.gt = vec![0.0; n];
        let (xr, gr) = (&x, &mut self.g);
        self.f = problem.problem("cost_count", |p| p.cost_and_gradient(xr, gr))?;
        self.progress.evaluations = 1;
        let pg = pg_norm(&bounds, &x, &self.g);
        self.progress.start(self.f, pg);
        self.alpha = if self.preconditioner.is_some() {
            1.0
        } else {
            let gmax = self.g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let xmax = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            if gmax > 0.0 {
                xmax.max(1e-3) / gmax
            } else {
                1.0
            }
        };
        if pg == 0.0 {
            self.progress.stop = Some(StopReason::ProjectedGradient);
        }
        self.x = x;
        self.bounds = Some(bounds);
        Ok((
            state
                .param(self.x.clone())
                .gradient(self.g.clone())
                .cost(self.f),
            None,
        ))
    }

    fn next_iter(
        &mut self,
        problem: &mut Problem<O>,
        state: State,
    ) -> Result<(State, Option<KV>), argmin::core::Error> {
        let bounds = self.bounds.take().ok_or_else(missing_param)?;
        // Only the diagonal of the preconditioner: with a non-diagonal
        // metric a projected step need not descend (that needs the
        // two-metric treatment of ProjectedLbfgs).
        for j in 0..self.x.len() {
            let p = self
                .preconditioner
                .as_ref()
                .map_or(1.0, |p| p.diagonal_entry(j));
            self.d[j] = -p * self.g[j];
        }
        let (accepted, trials) = self.line_search.search(
            problem,
            &bounds,
            &self.x,
            self.f,
            &self.g,
            &self.d,
            self.alpha,
            &mut self.xt,
            &mut self.gt,
        )?;
        self.progress.evaluations += u64::from(trials);
        let Some(step) = accepted else {
            self.progress.stop = Some(StopReason::LineSearchFailed);
            self.bounds = Some(bounds);
            return Ok((state, None));
        };
        // Next trial step.
        self.alpha = match self.rule {
            StepRule::Backtracking => 2.0 * step.alpha,
            StepRule::BarzilaiBorwein => {
                // BB2 in the (diagonal) preconditioned metric: s^T y / y^T P y.
                let mut sy = 0.0;
                let mut ypy = 0.0;
                for j in 0..self.x.len() {
                    let y = self.gt[j] - self.g[j];
                    let p = self
                        .preconditioner
                        .as_ref()
                        .map_or(1.0, |p| p.diagonal_entry(j));
                    sy += (self.xt[j] - self.x[j]) * y;
                    ypy += y * p * y;
                }
                if sy > 0.0 && ypy > 0.0 {
                    sy / ypy
                } else {
                    2.0 * step.alpha
                }
            }
        };
        let f_old = self.f;
        std::mem::swap(&mut self.x, &mut self.xt);
        std::mem::swap(&mut self.g, &mut self.gt);
        self.f = step.f;
        let pg = pg_norm(&bounds, &self.x, &self.g);
        self.progress.step(&self.tolerances, f_old, self.f, pg);
        self.bounds = Some(bounds);
        Ok((
            state
                .param(self.x.clone())
                .gradient(self.g.clone())
                .cost(self.f),
            Some(
                kv!("alpha" => step.alpha; "trials" => step.trials; "projected_gradient_norm" => pg;),
            ),
        ))
    }

    fn terminate(&mut self, _state: &State) -> TerminationStatus {
        self.progress
            .stop
            .as_ref()
            .map_or(TerminationStatus::NotTerminated, StopReason::status)
    }
}
