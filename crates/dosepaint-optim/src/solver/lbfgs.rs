//! Projected L-BFGS (two-metric projection) as an argmin solver.

use argmin::core::{KV, Problem, Solver, TerminationStatus};
use argmin::kv;

use crate::bounds::BoxProblem;
use crate::solver::iterate::Iterate;
use crate::solver::line_search::{LineSearch, segment_search, slope};
use crate::solver::preconditioner::Preconditioner;
use crate::solver::{Progress, State, StopReason, Tolerances, Tracked, dot};
use crate::{Bounds, Error, Result};

/// Projected L-BFGS for `min F(x)` subject to `l <= x <= u`: a two-metric
/// projection method (Bertsekas 1982) with a limited-memory BFGS metric on
/// the free variables and a projected Armijo line search.
///
/// Each iteration:
/// 1. the *binding* set `A` holds the variables within `eps_k` of a bound
///    whose gradient pushes them against it, with
///    `eps_k = min(eps, ||P(x - H0 g) - x||_inf)`;
/// 2. the direction is `d_F = -[H g_F]_F` on the free variables (the L-BFGS
///    two-loop recursion applied to the gradient with its `A` part zeroed,
///    initial matrix `H0 = gamma P`, `P` an optional diagonal preconditioner,
///    `gamma = s^T y / y^T P y`) and `d_A = -gamma P_A g_A` on `A`: a descent
///    direction whenever `x` is not stationary;
/// 3. backtracking from `alpha = 1` along the projection arc `P(x + alpha d)`
///    with the Armijo condition, by safeguarded quadratic interpolation;
/// 4. the pair `(s, y)` is stored when `s^T y > 1e-10 y^T y`.
///
/// One iteration costs one objective-and-gradient evaluation when the unit
/// step is accepted (the usual case).
///
/// References: D. P. Bertsekas, SIAM J Control Optim 20:221 (1982);
/// D. Kim, S. Sra, I. Dhillon, SIAM J Sci Comput 32:3548 (2010); J. Nocedal,
/// S. Wright, Numerical Optimization, 2nd ed., algorithm 7.4.
#[derive(Debug, Clone)]
pub struct ProjectedLbfgs {
    memory: usize,
    tolerances: Tolerances,
    line_search: LineSearch,
    preconditioner: Option<Preconditioner>,
    binding_epsilon: f64,
    segment_search: bool,
    // Work state.
    iterate: Iterate,
    s: Vec<Vec<f64>>,
    y: Vec<Vec<f64>>,
    rho: Vec<f64>,
    /// Index of the oldest pair in the ring and the number stored.
    head: usize,
    len: usize,
    q: Vec<f64>,
    coef: Vec<f64>,
    scratch: Vec<f64>,
    binding: Vec<bool>,
    gamma: f64,
}

impl Default for ProjectedLbfgs {
    fn default() -> Self {
        Self::new()
    }
}

impl ProjectedLbfgs {
    /// Memory 10, default [`Tolerances`], no preconditioner.
    pub fn new() -> Self {
        Self {
            memory: 10,
            tolerances: Tolerances::default(),
            line_search: LineSearch::default(),
            preconditioner: None,
            binding_epsilon: 1e-3,
            segment_search: true,
            iterate: Iterate::default(),
            s: Vec::new(),
            y: Vec::new(),
            rho: Vec::new(),
            head: 0,
            len: 0,
            q: Vec::new(),
            coef: Vec::new(),
            scratch: Vec::new(),
            binding: Vec::new(),
            gamma: 1.0,
        }
    }

    /// Number of correction pairs kept (>= 1).
    ///
    /// # Errors
    /// A memory of 0.
    pub fn with_memory(mut self, memory: usize) -> Result<Self> {
        if memory == 0 {
            return Err(Error::invalid("L-BFGS memory", "must be at least 1"));
        }
        self.memory = memory;
        Ok(self)
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

    /// A preconditioner `P` (an estimate of the inverse Hessian, e.g.
    /// [`FluenceProblem::preconditioner`](crate::FluenceProblem::preconditioner)),
    /// used as the initial L-BFGS matrix `H0 = gamma P`.
    #[must_use]
    pub fn with_preconditioner(mut self, preconditioner: Preconditioner) -> Self {
        self.preconditioner = Some(preconditioner);
        self
    }

    /// Whether to search along the projected unit step's segment with the
    /// problem's cheap line evaluations ([`BoxProblem::line_prepare`]; on by
    /// default, used only where the problem supports them), rather than
    /// backtracking along the projection arc with full evaluations.
    #[must_use]
    pub fn with_segment_search(mut self, on: bool) -> Self {
        self.segment_search = on;
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

    /// The last projected-gradient norm `||P(x - g) - x||_inf`.
    pub fn projected_gradient_norm(&self) -> f64 {
        self.progress().projected_gradient_norm()
    }

    fn precond(&self, j: usize) -> f64 {
        Preconditioner::diagonal_or_one(self.preconditioner.as_ref(), j)
    }

    /// The two-metric direction into `d`; returns the size of the
    /// binding set.
    fn direction(&mut self, bounds: &Bounds) -> usize {
        let n = self.iterate.x.len();
        // eps_k from the scaled projected-gradient step.
        let mut step = 0.0f64;
        let mut xmax = 0.0f64;
        for j in 0..n {
            let t = (self.iterate.x[j] - self.gamma * self.precond(j) * self.iterate.g[j])
                .clamp(bounds.lower()[j], bounds.upper()[j]);
            step = step.max((t - self.iterate.x[j]).abs());
            xmax = xmax.max(self.iterate.x[j].abs());
        }
        let eps = (self.binding_epsilon * xmax).min(step);
        self.binding.clear();
        self.binding.extend((0..n).map(|j| {
            (self.iterate.x[j] - bounds.lower()[j] <= eps && self.iterate.g[j] > 0.0)
                || (bounds.upper()[j] - self.iterate.x[j] <= eps && self.iterate.g[j] < 0.0)
        }));
        // With a non-diagonal metric the free-variable direction may push a
        // free variable that sits on its bound outwards, where projection
        // would fold the step; such variables join the binding set and the
        // direction is recomputed (at most a few passes).
        for _pass in 0..4 {
            self.two_loop();
            let mut added = false;
            for j in 0..n {
                if self.binding[j] {
                    continue;
                }
                let out_low = self.iterate.x[j] - bounds.lower()[j] <= eps && self.q[j] > 0.0;
                let out_high = bounds.upper()[j] - self.iterate.x[j] <= eps && self.q[j] < 0.0;
                if out_low || out_high {
                    self.binding[j] = true;
                    added = true;
                }
            }
            if !added {
                break;
            }
        }
        let mut n_bound = 0;
        for j in 0..n {
            self.iterate.d[j] = if self.binding[j] {
                n_bound += 1;
                -self.gamma * self.precond(j) * self.iterate.g[j]
            } else {
                -self.q[j]
            };
        }
        n_bound
    }

    /// `q = [H g~]`, `g~` the gradient with the binding variables zeroed,
    /// by the two-loop recursion; binding entries of `q` are meaningless.
    fn two_loop(&mut self) {
        for j in 0..self.iterate.x.len() {
            self.q[j] = if self.binding[j] {
                0.0
            } else {
                self.iterate.g[j]
            };
        }
        for k in (0..self.len).rev() {
            let i = (self.head + k) % self.memory;
            let a = self.rho[i] * dot(&self.s[i], &self.q);
            self.coef[i] = a;
            for (qj, yj) in self.q.iter_mut().zip(&self.y[i]) {
                *qj -= a * yj;
            }
        }
        if let Some(p) = &self.preconditioner {
            p.apply(&mut self.q);
        }
        for v in &mut self.q {
            *v *= self.gamma;
        }
        for k in 0..self.len {
            let i = (self.head + k) % self.memory;
            let b = self.rho[i] * dot(&self.y[i], &self.q);
            let c = self.coef[i] - b;
            for (qj, sj) in self.q.iter_mut().zip(&self.s[i]) {
                *qj += c * sj;
            }
        }
    }

    fn steepest_direction(&mut self) {
        for j in 0..self.iterate.x.len() {
            self.iterate.d[j] = -self.gamma * self.iterate.g[j];
        }
        if let Some(p) = &self.preconditioner {
            p.apply(&mut self.iterate.d);
        }
    }

    /// Stores `s = xt - x`, `y = gt - g` when the curvature condition holds
    /// (`q` and `d` serve as scratch: the direction is no longer needed).
    fn push_pair(&mut self) -> bool {
        let n = self.iterate.x.len();
        for j in 0..n {
            self.q[j] = self.iterate.xt[j] - self.iterate.x[j];
            self.iterate.d[j] = self.iterate.gt[j] - self.iterate.g[j];
        }
        let sy = dot(&self.q, &self.iterate.d);
        let yy = dot(&self.iterate.d, &self.iterate.d);
        if !(sy.is_finite() && sy > 1e-10 * yy) {
            return false;
        }
        let slot = if self.len < self.memory {
            self.len += 1;
            (self.head + self.len - 1) % self.memory
        } else {
            let oldest = self.head;
            self.head = (self.head + 1) % self.memory;
            oldest
        };
        std::mem::swap(&mut self.s[slot], &mut self.q);
        std::mem::swap(&mut self.y[slot], &mut self.iterate.d);
        self.rho[slot] = 1.0 / sy;
        self.scratch.clone_from(&self.y[slot]);
        if let Some(p) = &self.preconditioner {
            p.apply(&mut self.scratch);
        }
        let ypy = dot(&self.y[slot], &self.scratch);
        self.gamma = sy / ypy;
        true
    }
}

impl Tracked for ProjectedLbfgs {
    fn progress(&self) -> &Progress {
        &self.iterate.progress
    }
}

impl<O: BoxProblem> Solver<O, State> for ProjectedLbfgs {
    fn name(&self) -> &'static str {
        "projected L-BFGS"
    }

    fn init(
        &mut self,
        problem: &mut Problem<O>,
        mut state: State,
    ) -> Result<(State, Option<KV>), argmin::core::Error> {
        let preconditioner = self.preconditioner.as_ref();
        let pg = self.iterate.start(problem, &mut state, preconditioner)?;
        let n = self.iterate.x.len();
        self.s = vec![vec![0.0; n]; self.memory];
        self.y = vec![vec![0.0; n]; self.memory];
        self.rho = vec![0.0; self.memory];
        self.coef = vec![0.0; self.memory];
        self.head = 0;
        self.len = 0;
        self.q = vec![0.0; n];
        self.scratch = vec![0.0; n];
        // Without curvature information the first step is scaled so that it
        // moves the largest weight by at most its own size (or 1).
        self.gamma = self.iterate.initial_step_scale(preconditioner.is_some());
        Ok((
            self.iterate.report(state),
            Some(kv!("memory" => self.memory as u64; "projected_gradient_norm" => pg;)),
        ))
    }

    fn next_iter(
        &mut self,
        problem: &mut Problem<O>,
        state: State,
    ) -> Result<(State, Option<KV>), argmin::core::Error> {
        let bounds = self.iterate.take_bounds()?;
        let n_bound = self.direction(&bounds);
        if slope(&self.iterate.g, &self.iterate.d) >= 0.0 {
            self.len = 0;
            self.steepest_direction();
        }
        let mut accepted = None;
        let mut trials = 0;
        if self.segment_search {
            let Iterate { x, d, .. } = &self.iterate;
            for j in 0..x.len() {
                self.scratch[j] = (x[j] + d[j]).clamp(bounds.lower()[j], bounds.upper()[j]) - x[j];
            }
            let it = &mut self.iterate;
            accepted = segment_search(
                &self.line_search,
                problem,
                &bounds,
                &it.x,
                it.f,
                &it.g,
                &self.scratch,
                &mut it.xt,
                &mut it.gt,
            )?;
            if accepted.is_some() {
                trials = 1;
            }
        }
        if accepted.is_none() {
            let (a, t) = self
                .iterate
                .search_arc(&self.line_search, problem, &bounds, 1.0)?;
            accepted = a;
            trials += t;
        }
        if accepted.is_none() && self.len > 0 {
            // Retry once along the scaled steepest-descent direction with a
            // fresh memory.
            self.len = 0;
            self.steepest_direction();
            let (a, t) = self
                .iterate
                .search_arc(&self.line_search, problem, &bounds, 1.0)?;
            accepted = a;
            trials += t;
        }
        self.iterate.progress.evaluations += u64::from(trials);
        let Some(step) = accepted else {
            self.iterate.reject(bounds);
            let kv = kv!("trials" => trials;);
            return Ok((state, Some(kv)));
        };
        self.push_pair();
        let pg = self.iterate.accept(bounds, step.f, &self.tolerances);
        let kv = kv!(
            "alpha" => step.alpha;
            "trials" => step.trials;
            "binding" => n_bound as u64;
            "projected_gradient_norm" => pg;
        );
        Ok((self.iterate.report(state), Some(kv)))
    }

    fn terminate(&mut self, _state: &State) -> TerminationStatus {
        self.progress().termination()
    }
}
