//! The iterate both solvers carry from one iteration to the next, and the
//! steps they share: start, search along the projection arc, accept.

use argmin::core::Problem;

use crate::Bounds;
use crate::Error;
use crate::bounds::BoxProblem;
use crate::solver::line_search::{Accepted, LineSearch, pg_norm};
use crate::solver::preconditioner::Preconditioner;
use crate::solver::{Progress, State, StopReason, Tolerances, check_initial, missing_param};

/// The current point `x` with its objective `f` and gradient `g`, the search
/// direction `d`, the trial point `xt` with its gradient `gt`, the box, and
/// the convergence bookkeeping. [`ProjectedLbfgs`](super::ProjectedLbfgs)
/// and [`ProjectedGradient`](super::ProjectedGradient) differ only in how
/// they choose `d` and the first trial step.
#[derive(Debug, Clone)]
pub(crate) struct Iterate {
    /// The box, taken out for the length of an iteration (so that it can be
    /// borrowed while the solver is changed) and put back at its end.
    pub(crate) bounds: Option<Bounds>,
    pub(crate) x: Vec<f64>,
    pub(crate) g: Vec<f64>,
    pub(crate) d: Vec<f64>,
    pub(crate) xt: Vec<f64>,
    pub(crate) gt: Vec<f64>,
    pub(crate) f: f64,
    pub(crate) progress: Progress,
}

impl Default for Iterate {
    fn default() -> Self {
        Self {
            bounds: None,
            x: Vec::new(),
            g: Vec::new(),
            d: Vec::new(),
            xt: Vec::new(),
            gt: Vec::new(),
            f: f64::INFINITY,
            progress: Progress::default(),
        }
    }
}

impl Iterate {
    /// Takes the start point from `state`, checks it (and the length of the
    /// preconditioner) against the problem's bounds, evaluates the objective
    /// there and starts the bookkeeping (a start with a zero projected
    /// gradient is already stationary). Returns the projected-gradient norm.
    pub(crate) fn start<O: BoxProblem>(
        &mut self,
        problem: &mut Problem<O>,
        state: &mut State,
        preconditioner: Option<&Preconditioner>,
    ) -> Result<f64, argmin::core::Error> {
        let bounds = problem.problem("bounds", |p| Ok(p.bounds().clone()))?;
        let mut x = state.take_param().ok_or_else(missing_param)?;
        check_initial(&bounds, &mut x)?;
        let n = x.len();
        if let Some(p) = preconditioner
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
        if pg == 0.0 {
            self.progress.stop = Some(StopReason::ProjectedGradient);
        }
        self.x = x;
        self.bounds = Some(bounds);
        Ok(pg)
    }

    /// The scale of the first step when there is no curvature information:
    /// 1 with a preconditioner, otherwise one that moves the largest weight
    /// by about its own size (at least 1e-3).
    pub(crate) fn initial_step_scale(&self, preconditioned: bool) -> f64 {
        if preconditioned {
            return 1.0;
        }
        let gmax = self.g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let xmax = self.x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if gmax > 0.0 {
            xmax.max(1e-3) / gmax
        } else {
            1.0
        }
    }

    /// Takes the box out for the length of an iteration.
    pub(crate) fn take_bounds(&mut self) -> Result<Bounds, argmin::core::Error> {
        self.bounds.take().ok_or_else(missing_param)
    }

    /// The projected Armijo search along `P(x + alpha d)` from `alpha0`; an
    /// accepted point is left in `xt`, `gt`. Returns the step, if any, and the
    /// evaluations spent.
    pub(crate) fn search_arc<O: BoxProblem>(
        &mut self,
        line_search: &LineSearch,
        problem: &mut Problem<O>,
        bounds: &Bounds,
        alpha0: f64,
    ) -> Result<(Option<Accepted>, u32), argmin::core::Error> {
        line_search.search(
            problem,
            bounds,
            &self.x,
            self.f,
            &self.g,
            &self.d,
            alpha0,
            &mut self.xt,
            &mut self.gt,
        )
    }

    /// Ends an iteration whose search found no decrease: the solver stops.
    pub(crate) fn reject(&mut self, bounds: Bounds) {
        self.progress.stop = Some(StopReason::LineSearchFailed);
        self.bounds = Some(bounds);
    }

    /// Moves to the trial point (objective `f_new`), applies the convergence
    /// tests and puts the box back. Returns the new projected-gradient norm.
    pub(crate) fn accept(&mut self, bounds: Bounds, f_new: f64, tolerances: &Tolerances) -> f64 {
        let f_old = self.f;
        std::mem::swap(&mut self.x, &mut self.xt);
        std::mem::swap(&mut self.g, &mut self.gt);
        self.f = f_new;
        let pg = pg_norm(&bounds, &self.x, &self.g);
        self.progress.step(tolerances, f_old, self.f, pg);
        self.bounds = Some(bounds);
        pg
    }

    /// `state` at the current point.
    pub(crate) fn report(&self, state: State) -> State {
        state
            .param(self.x.clone())
            .gradient(self.g.clone())
            .cost(self.f)
    }
}
