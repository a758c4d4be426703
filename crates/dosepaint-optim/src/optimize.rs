//! The convenient entry point: settings, [`optimize`], and its result.

use std::time::{Duration, Instant};

use argmin::core::{Executor, KV, Problem, Solver, State as _, TerminationStatus};
use serde::{Deserialize, Serialize};

use crate::constraint::ConstraintReport;
use crate::problem::{FluenceProblem, ObjectiveValue, PreconditionerKind};
use crate::solver::{ProjectedGradient, ProjectedLbfgs, State, StopReason, Tolerances, Tracked};
use crate::{Error, Result};

/// Which bound-constrained solver [`optimize`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SolverKind {
    /// [`ProjectedLbfgs`] (the default).
    ProjectedLbfgs,
    /// [`ProjectedGradient`] with Barzilai-Borwein steps (the baseline).
    ProjectedGradient,
}

/// Where the optimization starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartPoint {
    /// The best uniform plan `w = c 1` ([`FluenceProblem::uniform_start`]).
    BestUniform,
    /// Given weights (e.g. a previous plan); they must lie in the bounds.
    Weights(Vec<f64>),
}

/// Settings of [`optimize`]. Checked once by [`Settings::validate`] (which
/// `optimize` calls).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The solver.
    pub solver: SolverKind,
    /// Most iterations in total (over all augmented-Lagrangian rounds).
    pub max_iterations: u64,
    /// Wall-clock limit in seconds, if any.
    pub time_limit_s: Option<f64>,
    /// Convergence tests.
    pub tolerances: Tolerances,
    /// L-BFGS memory (correction pairs).
    pub lbfgs_memory: usize,
    /// Preconditioning from the objectives' curvature at the start point
    /// ([`FluenceProblem::preconditioner`]); `None` for none.
    pub preconditioner: Option<PreconditionerKind>,
    /// L-BFGS: search along the segment of the projected unit step with cheap
    /// line evaluations (`D (x + t p) = D x + t D p`: one extra `D p` per
    /// iteration, trial steps without matrix products) instead of
    /// backtracking along the projection arc.
    pub segment_search: bool,
    /// The start point.
    pub start: StartPoint,
    /// Most augmented-Lagrangian rounds when there are constraints.
    pub max_outer_iterations: u32,
    /// Initial penalty parameter `mu` of the constraints.
    pub initial_penalty: f64,
    /// Factor by which `mu` grows when a violation did not shrink by 4x.
    pub penalty_growth: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            solver: SolverKind::ProjectedLbfgs,
            max_iterations: 500,
            time_limit_s: None,
            tolerances: Tolerances::default(),
            lbfgs_memory: 10,
            preconditioner: Some(PreconditionerKind::BeamBlocks),
            segment_search: true,
            start: StartPoint::BestUniform,
            max_outer_iterations: 12,
            initial_penalty: 10.0,
            penalty_growth: 10.0,
        }
    }
}

impl Settings {
    /// Checks every setting.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the setting.
    pub fn validate(&self) -> Result<()> {
        if self.max_iterations == 0 {
            return Err(Error::invalid("max_iterations", "must be at least 1"));
        }
        if let Some(t) = self.time_limit_s {
            crate::error::positive("time_limit_s", t)?;
        }
        self.tolerances.validate()?;
        if self.lbfgs_memory == 0 {
            return Err(Error::invalid("lbfgs_memory", "must be at least 1"));
        }
        if self.max_outer_iterations == 0 {
            return Err(Error::invalid("max_outer_iterations", "must be at least 1"));
        }
        crate::error::positive("initial_penalty", self.initial_penalty)?;
        if !(self.penalty_growth.is_finite() && self.penalty_growth >= 1.0) {
            return Err(Error::invalid(
                "penalty_growth",
                format!("{} must be finite and at least 1", self.penalty_growth),
            ));
        }
        Ok(())
    }
}

/// What the progress callback of [`optimize`] sees after every iteration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct IterationInfo<'a> {
    /// Iterations done so far (over all rounds).
    pub iteration: u64,
    /// The iteration limit.
    pub max_iterations: u64,
    /// Augmented-Lagrangian round (0 without constraints).
    pub round: u32,
    /// Current objective (including constraint terms during rounds).
    pub objective: f64,
    /// Current projected-gradient norm.
    pub projected_gradient_norm: f64,
    /// Seconds since the start.
    pub elapsed_s: f64,
    /// The current beamlet weights.
    pub weights: &'a [f64],
}

/// The outcome of [`optimize`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizationResult {
    /// The optimized beamlet weights.
    pub weights: Vec<f64>,
    /// The objective `F(w)` at the weights (without constraint terms).
    pub objective: f64,
    /// The objective after every iteration (index 0: the start point;
    /// during constraint rounds it includes the constraint terms).
    pub history: Vec<f64>,
    /// Every objective's own value at the weights.
    pub objectives: Vec<ObjectiveValue>,
    /// Every constraint's final state.
    pub constraints: Vec<ConstraintReport>,
    /// Iterations (over all rounds).
    pub iterations: u64,
    /// Objective-and-gradient evaluations (each one `D w` and one `D^T g`).
    pub evaluations: u64,
    /// Augmented-Lagrangian rounds run (1 without constraints).
    pub rounds: u32,
    /// Wall-clock seconds, including the start point and preconditioner.
    pub time_s: f64,
    /// Why it stopped (the last round's reason).
    pub stop_reason: StopReason,
    /// Final projected-gradient norm `||P(w - g) - w||_inf`.
    pub projected_gradient_norm: f64,
    /// Name of the solver.
    pub solver: String,
}

impl OptimizationResult {
    /// Whether every constraint is met (true without constraints).
    pub fn constraints_met(&self) -> bool {
        self.constraints.iter().all(|c| c.met)
    }
}

/// Where the progress callback of [`optimize`] goes, and what it needs to
/// number one round's iterations.
struct Reporter<'f> {
    callback: &'f mut dyn FnMut(&IterationInfo<'_>),
    /// Iterations done in earlier rounds.
    offset: u64,
    max_iterations: u64,
    round: u32,
    start: Instant,
}

/// A solver wrapper that reports every iteration to a callback (no
/// `'static` bound, unlike argmin observers).
struct WithProgress<'f, S> {
    inner: S,
    reporter: Reporter<'f>,
}

impl<O, S: Solver<O, State>> Solver<O, State> for WithProgress<'_, S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn init(
        &mut self,
        problem: &mut Problem<O>,
        state: State,
    ) -> Result<(State, Option<KV>), argmin::core::Error> {
        self.inner.init(problem, state)
    }

    fn next_iter(
        &mut self,
        problem: &mut Problem<O>,
        state: State,
    ) -> Result<(State, Option<KV>), argmin::core::Error> {
        let (state, kv) = self.inner.next_iter(problem, state)?;
        let pg = kv
            .as_ref()
            .and_then(|kv| kv.get("projected_gradient_norm"))
            .and_then(argmin::core::KvValue::get_float)
            .unwrap_or(f64::NAN);
        let r = &mut self.reporter;
        (r.callback)(&IterationInfo {
            iteration: r.offset + state.get_iter() + 1,
            max_iterations: r.max_iterations,
            round: r.round,
            objective: state.get_cost(),
            projected_gradient_norm: pg,
            elapsed_s: r.start.elapsed().as_secs_f64(),
            weights: state.get_param().map_or(&[], Vec::as_slice),
        });
        Ok((state, kv))
    }

    fn terminate(&mut self, state: &State) -> TerminationStatus {
        self.inner.terminate(state)
    }
}

struct Round {
    weights: Vec<f64>,
    iterations: u64,
    evaluations: u64,
    history: Vec<f64>,
    stop: StopReason,
    pg: f64,
}

/// Runs one round of `solver` from `start` under argmin's executor,
/// reporting every iteration.
fn run_round<'b, 'a, S>(
    problem: &'b FluenceProblem<'a>,
    solver: S,
    reporter: Reporter<'_>,
    start: Vec<f64>,
    max_iters: u64,
    timeout: Option<Duration>,
) -> Result<Round>
where
    S: Solver<&'b FluenceProblem<'a>, State> + Tracked,
{
    let solver = WithProgress {
        inner: solver,
        reporter,
    };
    let mut exec =
        Executor::new(problem, solver).configure(|s| s.param(start).max_iters(max_iters));
    if let Some(t) = timeout {
        exec = exec.timer(true).timeout(t);
    }
    let result = exec.run().map_err(Error::from_argmin)?;
    let state = result.state();
    let weights = state
        .get_best_param()
        .or_else(|| state.get_param())
        .cloned()
        .ok_or_else(|| Error::Solver("the solver returned no weights".into()))?;
    let progress = result.solver().inner.progress();
    Ok(Round {
        weights,
        iterations: state.get_iter(),
        evaluations: progress.evaluations(),
        history: progress.history().to_vec(),
        stop: StopReason::from_argmin(state.get_termination_status()),
        pg: progress.projected_gradient_norm(),
    })
}

/// Optimizes the beamlet weights of `problem` with the solver and rules of
/// `settings`, calling `progress` after every iteration (e.g. to drive a
/// progress bar; pass `&mut |_| {}` for none).
///
/// Runs argmin's [`Executor`] with [`ProjectedLbfgs`] or
/// [`ProjectedGradient`]. With constraints, runs augmented-Lagrangian rounds
/// (see [`Constraint`](crate::Constraint)) until every constraint is met or
/// the limits are reached; the result reports each constraint.
///
/// Deterministic: the same input and thread count give the same bits.
///
/// # Errors
/// Invalid settings, a problem without objectives, start weights of the
/// wrong length, non-finite or outside the bounds, or an objective that
/// evaluates to a non-finite value.
pub fn optimize(
    problem: &mut FluenceProblem<'_>,
    settings: &Settings,
    progress: &mut dyn FnMut(&IterationInfo<'_>),
) -> Result<OptimizationResult> {
    let t0 = Instant::now();
    settings.validate()?;
    problem.ensure_ready()?;
    let mut x = match &settings.start {
        StartPoint::BestUniform => problem.uniform_start()?,
        StartPoint::Weights(w) => {
            problem.check_weights(w)?;
            w.clone()
        }
    };
    let constrained = !problem.constraints().is_empty();
    problem.reset_multipliers(settings.initial_penalty);
    let rounds_max = if constrained {
        settings.max_outer_iterations
    } else {
        1
    };
    let mut history = Vec::new();
    let mut iterations = 0u64;
    let mut evaluations = 0u64;
    let mut rounds = 0;
    let mut stop = StopReason::MaxIterations;
    let mut pg = f64::NAN;
    let mut previous_violation: Vec<f64> = Vec::new();
    for round in 0..rounds_max {
        rounds = round + 1;
        let remaining_iters = settings.max_iterations - iterations;
        let timeout = match settings.time_limit_s {
            Some(limit) => {
                let left = limit - t0.elapsed().as_secs_f64();
                if left <= 0.0 {
                    stop = StopReason::TimeLimit;
                    break;
                }
                Some(Duration::from_secs_f64(left))
            }
            None => None,
        };
        let pre = match settings.preconditioner {
            Some(kind) => Some(problem.preconditioner(&x, kind)?),
            None => None,
        };
        let shared: &FluenceProblem<'_> = problem;
        let reporter = Reporter {
            callback: progress,
            offset: iterations,
            max_iterations: settings.max_iterations,
            round,
            start: t0,
        };
        let r = match settings.solver {
            SolverKind::ProjectedLbfgs => {
                let mut s = ProjectedLbfgs::new()
                    .with_memory(settings.lbfgs_memory)?
                    .with_tolerances(settings.tolerances)?
                    .with_segment_search(settings.segment_search);
                if let Some(p) = pre {
                    s = s.with_preconditioner(p);
                }
                run_round(shared, s, reporter, x, remaining_iters, timeout)?
            }
            SolverKind::ProjectedGradient => {
                let mut s = ProjectedGradient::new().with_tolerances(settings.tolerances)?;
                if let Some(p) = pre {
                    s = s.with_preconditioner(p);
                }
                run_round(shared, s, reporter, x, remaining_iters, timeout)?
            }
        };
        if history.is_empty() {
            history.extend_from_slice(&r.history);
        } else {
            history.extend_from_slice(&r.history[1..]);
        }
        iterations += r.iterations;
        evaluations += r.evaluations;
        stop = r.stop;
        pg = r.pg;
        x = r.weights;
        if !constrained {
            break;
        }
        let violation = problem.update_multipliers(&x)?;
        let reports = problem.constraint_reports(&x)?;
        if reports.iter().all(|c| c.met) {
            break;
        }
        if iterations >= settings.max_iterations || stop == StopReason::TimeLimit {
            break;
        }
        for (k, v) in violation.iter().enumerate() {
            if previous_violation.get(k).is_some_and(|p| *v > 0.25 * p) && *v > 0.0 {
                problem.grow_penalty(k, settings.penalty_growth);
            }
        }
        previous_violation = violation;
    }
    let objective = problem.value(&x)?;
    let objectives = problem.objective_values(&x)?;
    let constraints = problem.constraint_reports(&x)?;
    Ok(OptimizationResult {
        weights: x,
        objective,
        history,
        objectives,
        constraints,
        iterations,
        evaluations,
        rounds,
        time_s: t0.elapsed().as_secs_f64(),
        stop_reason: stop,
        projected_gradient_norm: pg,
        solver: match settings.solver {
            SolverKind::ProjectedLbfgs => "projected L-BFGS".into(),
            SolverKind::ProjectedGradient => "projected gradient".into(),
        },
    })
}
